"""Train the default NER model from scratch on MSRA and write a ModelScope lstm-crf directory.

Usage:
    python -m scripts.train_model [--config scripts/train_model.json] [--output DIR]

Reproducible: fixed seed, checked data, one thread count. The directory holds configuration.json,
config.json, vocab.txt, tokenizer_config.json, pytorch_model.bin, metrics.json and README.md;
its test scores come from the serving backend (the same code as `make eval`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from scripts.make_model import publishing  # noqa: E402
from scripts.training import lac, modelcard, msra  # noqa: E402
from scripts.training.lac_init import embedding_of, init_from_lac, lac_vocab  # noqa: E402
from scripts.training.tags import bies_labels  # noqa: E402
from scripts.training.vocab import CharEncoder, build_vocab, char_counts, rare_ids  # noqa: E402

DEFAULT_CONFIG = REPO / "scripts" / "train_model.json"


def machine() -> dict[str, object]:
    """Where the run happened: training time means little without it."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _shown(path: Path) -> str:
    """A path as the model card shows it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def split_dev(sentences: list[msra.Sentence], dev_size: int, seed: int) -> tuple[list, list]:
    """A seeded random dev split held out of the training file (it shares documents with training,
    so its F1 runs above the test split's; it picks the epoch, it does not estimate the score)."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    dev = set(order[:dev_size])
    return [s for i, s in enumerate(sentences) if i not in dev], [s for i, s in enumerate(sentences) if i in dev]


def make_augmenter(section: dict, train_sentences: list[msra.Sentence], data: dict[str, str]):
    """The configured mention-replacement augmenter; fetches (and records) the lexicon if it is a source."""
    from scripts import fetch_lexicon
    from scripts.training.augment import Augmenter, AugmentSettings, build_pools

    settings = AugmentSettings(**section)
    lexicon = None
    if settings.sources.get("lexicon", 0) > 0:
        lexicon = fetch_lexicon.fetch(REPO / settings.lexicon_dir)
        data.update(fetch_lexicon.checksums())
    pools = build_pools(settings, train_sentences, lexicon)
    sizes = {source: {kind: len(names) for kind, names in pool.items()} for source, pool in pools.items()}
    print(f"augmentation names per source and type: {sizes}")
    return Augmenter(settings, pools)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--output", type=Path, help="model directory (default: the config's output_dir)")
    parser.add_argument("--data-dir", type=Path, default=msra.DEFAULT_DATA_DIR)
    parser.add_argument("--limit", type=int, default=0, help="use only N sentences of each file (a smoke run)")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text(encoding="utf-8"))
    output = (args.output or REPO / config["output_dir"]).resolve()
    machine_info = machine()

    import torch

    from scripts.training.evaluation import novelty, predict_spans
    from scripts.training.lstm_crf import Tagger, neutralise_padding, tie_rows_to_unk
    from scripts.training.metrics import format_table, score_entities
    from scripts.training.modeldir import WEIGHTS_FILE, build_model, write_config_files
    from scripts.training.tags import spans_from_tags
    from scripts.training.training import TrainSettings, train
    from worker.backends import load_backend

    seed = config["seed"]
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(config["torch_threads"])

    paths = msra.fetch(args.data_dir)
    data = msra.checksums()
    all_train = msra.read_sentences(paths["train"])[: args.limit or None]
    train_sentences, dev_sentences = split_dev(all_train, config["dev_size"], seed)
    print(f"MSRA: {len(train_sentences)} training sentences, {len(dev_sentences)} held out for model selection")

    labels = bies_labels()
    lac_part = config.get("init", {}).get("lac")
    if lac_part:
        # LAC's characters are the vocabulary; every row is pretrained, so none is tied to [UNK].
        lac_net = lac.load(lac.fetch())
        data["lac"] = f"{lac.SDIST_NAME} sha256:{lac.SDIST_SHA256} ({lac.LICENSE})"
        vocab, lac_rows = lac_vocab(lac_net)
        rare: list[int] = []
    else:
        counts = char_counts(sentence.text for sentence in train_sentences)
        vocab = build_vocab(counts)
        rare = rare_ids(vocab, counts, config["min_count"])
    with publishing(output) as work:
        dims = config["model"]
        backbone = write_config_files(
            work, labels, vocab, dims["embed_width"], dims["lstm_hidden_size"],
            dims.get("type", "lstm-crf"), dims.get("num_layers", 1),
        )  # fmt: skip
        encoder = CharEncoder(work, rare)
        label_id = {label: i for i, label in enumerate(labels)}

        def examples(sentences):
            return [(encoder.encode(s.chars), [label_id[x] for x in s.labels]) for s in sentences]

        train_set, dev_set = examples(train_sentences), examples(dev_sentences)
        epoch_extra = None
        if "augment" in config:
            # Copies of training sentences only (dev_sentences never reach the augmenter); the vocabulary
            # above stays that of the original training sentences, so lexicon-only characters train as [UNK].
            augmenter = make_augmenter(config["augment"], train_sentences, data)
            copies = augmenter.copies
            if "distill" in config:
                # The copies' labels come from the teacher, not from the replaced mentions.
                from scripts.training.distill import relabel

                teacher_dir = REPO / config["distill"]["teacher"]
                teacher = load_backend("onnx", teacher_dir, cache_dir=REPO / ".local" / "cache")
                data["teacher"] = f"{teacher.name}@{teacher.version}"

                def copies(sentences, round_=0):
                    return relabel(teacher, augmenter.copies(sentences, round_))

            if augmenter.settings.resample_each_epoch:

                def epoch_extra(epoch: int) -> list:
                    extra = examples(copies(train_sentences, epoch))
                    print(f"epoch {epoch}: {len(extra)} augmented copies")
                    return extra

            else:
                extra = examples(copies(train_sentences))
                print(f"augmentation: {len(extra)} copies added to {len(train_set)} training sentences")
                train_set = train_set + extra
        print(
            f"vocabulary {len(vocab)} tokens, {len(rare)} of them shipped as [UNK] (seen < {config['min_count']} times)"
        )

        model = build_model(work, len(labels), backbone)
        if lac_part:
            init_from_lac(model, lac_net, lac_rows, lac_part, labels)
            print(f"initialised from LAC: {lac_part}")
        else:
            bound = (3 / dims["embed_width"]) ** 0.5
            torch.nn.init.uniform_(embedding_of(model).weight, -bound, bound)
        regularisation = config["regularisation"]
        tagger = Tagger(
            model, regularisation["embed_dropout"], regularisation["output_dropout"], regularisation["unk_rate"]
        )
        history = train(
            tagger, train_set, dev_set, labels, TrainSettings(**config["train"]), seed, epoch_extra=epoch_extra
        )

        tie_rows_to_unk(embedding_of(model), rare)
        if backbone["type"] == "lstm":
            print(f"padding residual {neutralise_padding(model):.1e}")
        torch.save(model.state_dict(), work / WEIGHTS_FILE)
        print(f"best dev F1 {history.best_dev_f1:.4f} at epoch {history.best_epoch}")

        backend = load_backend("raner", work, torch_threads=config["torch_threads"])
        started = time.monotonic()
        test_sentences = msra.read_sentences(paths["test"])[: args.limit or None]
        predicted = predict_spans(backend, test_sentences)
        scores = score_entities([spans_from_tags(s.labels) for s in test_sentences], predicted)
        novel = novelty(train_sentences, test_sentences, predicted)
        print(format_table(scores))
        print(f"unseen-mention recall {novel.unseen_recall:.4f}, seen {novel.seen_recall:.4f}")
        machine_info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        metrics = modelcard.metrics(
            scores=scores,
            novelty=novel,
            test_sentences=len(test_sentences),
            eval_seconds=time.monotonic() - started,
            config=config,
            history=history,
            data=data,
            machine=machine_info,
            torch_version=torch.__version__,
            parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=len(vocab),
            train_sentences=len(train_sentences),
            dev_sentences=len(dev_sentences),
        )
        metrics["config_file"] = _shown(args.config)
        metrics["name"] = output.name
        modelcard.write(work, metrics)
    print(f"wrote {output} ({modelcard.size_mb(output):.1f} MB)")
    print(f"F1 {scores['ALL'].f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
