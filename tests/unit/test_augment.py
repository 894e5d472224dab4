"""What mention-replacement augmentation guarantees: aligned BIES labels, same types, only training data, seeded."""

from __future__ import annotations

from scripts.training.augment import (
    Augmenter,
    AugmentSettings,
    build_pools,
    entity_labels,
    entity_names,
    keep_lexicon_entry,
    read_lexicon,
    replace_mentions,
    surnames,
)
from scripts.training.msra import Sentence
from scripts.training.tags import bies_labels, spans_from_tags


def sentence(*parts: tuple[str, str | None]) -> Sentence:
    """Build a sentence from (text, type-or-None) parts."""
    chars: list[str] = []
    labels: list[str] = []
    for text, kind in parts:
        chars += list(text)
        labels += entity_labels(kind, len(text)) if kind else ["O"] * len(text)
    return Sentence(tuple(chars), tuple(labels))


TRAIN = [
    sentence(("李强", "PER"), ("在", None), ("北京", "LOC"), ("访问", None), ("联合国", "ORG"), ("。", None)),
    sentence(("王小明", "PER"), ("来自", None), ("上海市", "LOC"), ("。", None)),
    sentence(("今天天气很好。", None)),
    sentence(("张", "PER"), ("说", None), ("新华社", "ORG"), ("报道", None)),
    sentence(("李华", "PER"), ("到了", None), ("广州", "LOC")),
]
DEV = [sentence(("欧阳锋", "PER"), ("住在", None), ("桃花岛", "LOC"))]


def names_of(s: Sentence) -> list[tuple[str, str]]:
    return [(span.type, "".join(s.chars[span.start : span.end])) for span in spans_from_tags(s.labels)]


def context_of(s: Sentence) -> list[str]:
    """The text outside entities, in order (what replacement must leave alone)."""
    out, position = [], 0
    for span in spans_from_tags(s.labels):
        out.append("".join(s.chars[position : span.start]))
        position = span.end
    return out + ["".join(s.chars[position:])]


def augmenter(**overrides) -> Augmenter:
    settings = AugmentSettings(**({"seed": 7, "fraction": 1.0, "replace_prob": 0.5} | overrides))
    return Augmenter(settings, build_pools(settings, TRAIN, None))


def test_replacement_keeps_labels_aligned_and_typed():
    original = TRAIN[0]
    copy = replace_mentions(original, {0: "司马相如", 1: "津", 2: "世界卫生组织"})
    assert len(copy.chars) == len(copy.labels)
    assert set(copy.labels) <= set(bies_labels())
    assert names_of(copy) == [("PER", "司马相如"), ("LOC", "津"), ("ORG", "世界卫生组织")]
    assert copy.labels[copy.chars.index("津")] == "S-LOC"
    assert context_of(copy) == context_of(original)


def test_copies_are_valid_bies_with_the_original_types():
    for copy in augmenter(copies=3).copies(TRAIN):
        assert len(copy.chars) == len(copy.labels)
        assert set(copy.labels) <= set(bies_labels())
        # Decoding the labels back gives exactly the entities, with no broken pieces left over.
        assert sum(span.end - span.start for span in spans_from_tags(copy.labels)) == sum(
            label != "O" for label in copy.labels
        )
        originals = [s for s in TRAIN if context_of(s) == context_of(copy)]
        assert originals, "a copy changes only entity text"
        assert [kind for kind, _ in names_of(copy)] == [kind for kind, _ in names_of(originals[0])]


def test_at_least_one_mention_is_replaced_and_entity_free_sentences_are_skipped():
    copies = augmenter(replace_prob=0.0, sources={"train": 1.0}).copies(TRAIN)
    assert len(copies) == 4  # every entity-bearing sentence once, never the entity-free one
    assert all(
        sum(a != b for a, b in zip(names_of(c), names_of(o))) <= 1
        for c, o in zip(copies, [TRAIN[i] for i in (0, 1, 3, 4)])
    )
    assert augmenter(fraction=0.0).copies(TRAIN) == []


def test_dev_and_test_sentences_never_reach_the_names_or_the_copies():
    pools = build_pools(AugmentSettings(seed=1), TRAIN, None)
    assert pools["train"] == entity_names(TRAIN)
    dev_names = {name for s in DEV for _, name in names_of(s)}
    copies = augmenter(copies=5).copies(TRAIN)
    seen = {name for c in copies for _, name in names_of(c)}
    assert not dev_names & seen
    assert not dev_names & {name for names in pools["train"].values() for name in names}


def test_inputs_are_not_modified():
    before = list(TRAIN)
    augmenter(copies=2).copies(TRAIN)
    assert TRAIN == before


def test_deterministic_for_a_seed_and_round():
    assert augmenter().copies(TRAIN, 3) == augmenter().copies(TRAIN, 3)
    many = TRAIN * 20
    assert augmenter().copies(many, 1) != augmenter().copies(many, 2)
    assert augmenter().copies(many, 1) != augmenter(seed=8).copies(many, 1)


def test_lexicon_filters(tmp_path):
    surname_chars = surnames(TRAIN, min_count=1)
    assert surname_chars == {"李", "王"}  # "张" is a one-character mention
    assert keep_lexicon_entry("李大钊", "PER", surname_chars)
    assert not keep_lexicon_entry("李家庄", "PER", surname_chars)  # a village, not a person
    assert not keep_lexicon_entry("三皇五帝", "PER", surname_chars)  # idiom tagged nr
    assert not keep_lexicon_entry("陈独秀", "PER", surname_chars)  # surname never seen in training
    assert keep_lexicon_entry("张掖市", "LOC", surname_chars)
    assert not keep_lexicon_entry("加密", "LOC", surname_chars)
    assert keep_lexicon_entry("燕京大学", "ORG", surname_chars)
    assert not keep_lexicon_entry("中南部", "ORG", surname_chars)
    lexicon = tmp_path / "dict.txt"
    lexicon.write_text("李大钊 20 nr\n张掖市 20 ns\n燕京大学 5 nt\n北京 100 v\nAT&T 3 nt\n", encoding="utf-8")
    assert read_lexicon(lexicon, surname_chars) == {"PER": ["李大钊"], "LOC": ["张掖市"], "ORG": ["燕京大学"]}


def test_lexicon_source_supplies_names_by_weight(tmp_path):
    lexicon = tmp_path / "dict.txt"
    lexicon.write_text("李大钊 20 nr\n张掖市 20 ns\n燕京大学 5 nt\n", encoding="utf-8")
    settings = AugmentSettings(seed=3, fraction=1.0, replace_prob=1.0, sources={"lexicon": 1.0}, min_surname_count=1)
    copies = Augmenter(settings, build_pools(settings, TRAIN, lexicon)).copies(TRAIN)
    assert {name for c in copies for _, name in names_of(c)} == {"李大钊", "张掖市", "燕京大学"}


def test_training_loop_takes_fresh_extra_examples_each_epoch(tmp_path):
    from scripts.training.lstm_crf import Tagger
    from scripts.training.training import TrainSettings, train
    from tests.unit.test_lstm_crf_training import tiny_model

    model, labels, vocab = tiny_model(tmp_path)
    label_id = {label: i for i, label in enumerate(labels)}
    to_ids = lambda s: ([vocab.index(c) if c in vocab else 1 for c in s.chars], [label_id[x] for x in s.labels])  # noqa: E731
    train_set = [to_ids(s) for s in TRAIN]
    calls: list[int] = []

    def extra(epoch: int):
        calls.append(epoch)
        return [to_ids(s) for s in augmenter().copies(TRAIN, epoch)]

    settings = TrainSettings(epochs=3, batch_size=2, learning_rate=0.01, weight_decay=0.0, warmup_steps=1,
                             final_lr_fraction=0.1, grad_clip=5.0, patience=5, max_minutes=5)  # fmt: skip
    history = train(
        Tagger(model, 0.0, 0.0, 0.0), train_set, train_set, labels, settings, 0, say=lambda _: None, epoch_extra=extra
    )
    assert calls == [1, 2, 3] and len(history.epochs) == 3
