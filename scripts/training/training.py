"""The training loop: equal-length batches (no padding at all), dev-set model selection, a time budget."""

from __future__ import annotations

import copy
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from scripts.training.lstm_crf import Tagger, enforce_bies
from scripts.training.metrics import score_entities
from scripts.training.tags import spans_from_tags

Example = tuple[list[int], list[int]]  # token ids, label ids


@dataclass
class TrainSettings:
    """The knobs of one training run (read from the JSON config)."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    final_lr_fraction: float
    grad_clip: float
    patience: int
    max_minutes: float
    ema_decay: float = 0.0  # > 0: select and ship an exponential moving average of the weights
    encoder_lr_factor: float = 1.0  # < 1: a pretrained encoder moves slower than the new head


@dataclass
class History:
    """What happened, epoch by epoch; ends up in metrics.json."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_f1: float = -1.0
    stopped_by: str = "epochs"
    seconds: float = 0.0


def equal_length_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped so every batch holds sentences of one length: exact, and no wasted compute."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, (ids, _) in enumerate(examples):
        by_length[len(ids)].append(index)
    batches = []
    for indices in by_length.values():
        rng.shuffle(indices)
        batches += [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    rng.shuffle(batches)
    return batches


def _tensor(examples: Sequence[Example], batch: list[int], column: int) -> torch.Tensor:
    return torch.tensor([examples[i][column] for i in batch], dtype=torch.long)


def dev_f1(tagger: Tagger, examples: Sequence[Example], labels: list[str], batch_size: int = 256) -> float:
    """Entity F1 on held-out sentences, decoded like the pipeline decodes (Viterbi, no dropout)."""
    tagger.eval()
    gold, predicted = [], []
    for batch in equal_length_batches(examples, batch_size, random.Random(0)):
        paths = tagger.predict(_tensor(examples, batch, 0))
        for index, path in zip(batch, paths):
            gold.append(spans_from_tags([labels[i] for i in examples[index][1]]))
            predicted.append(spans_from_tags([labels[i] for i in path]))
    tagger.train()
    return score_entities(gold, predicted)["ALL"].f1


class WeightAverage:
    """Exponential moving average of the weights: a smoother model than the last step's."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self._params = [p for p in model.parameters()]
        self._average = [p.detach().clone() for p in self._params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self._average, [p.detach() for p in self._params], 1 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and averaged weights (call twice to get back)."""
        for live, average in zip(self._params, self._average):
            buffer = live.detach().clone()
            live.copy_(average)
            average.copy_(buffer)


def _schedule(settings: TrainSettings, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to final_lr_fraction of the peak."""

    def factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = min(1.0, (step - settings.warmup_steps) / max(1, total_steps - settings.warmup_steps))
        floor = settings.final_lr_fraction
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train(
    tagger: Tagger,
    train_set: Sequence[Example],
    dev_set: Sequence[Example],
    labels: list[str],
    settings: TrainSettings,
    seed: int,
    say: Callable[[str], None] = print,
    epoch_extra: Callable[[int], Sequence[Example]] | None = None,
) -> History:
    """Train in place; leaves the tagger holding the weights of its best dev epoch.

    epoch_extra(epoch), if given, returns extra examples (augmented copies) trained on in that epoch only."""
    rng = random.Random(seed)
    crf = tagger.model.head.crf
    enforce_bies(crf, labels)
    encoder = list(tagger.model.encoder.parameters())
    encoder_ids = {id(p) for p in encoder}
    groups = [
        {"params": encoder, "lr": settings.learning_rate * settings.encoder_lr_factor},
        {"params": [p for p in tagger.parameters() if id(p) not in encoder_ids], "lr": settings.learning_rate},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    epoch_set = train_set if epoch_extra is None else [*train_set, *epoch_extra(1)]
    steps_per_epoch = len(equal_length_batches(epoch_set, settings.batch_size, random.Random(0)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(settings, steps_per_epoch * settings.epochs))
    average = WeightAverage(tagger.model, settings.ema_decay) if settings.ema_decay > 0 else None
    history = History()
    best_state = copy.deepcopy(tagger.model.state_dict())
    started = time.monotonic()
    tagger.train()
    for epoch in range(1, settings.epochs + 1):
        if epoch_extra is not None and epoch > 1:
            epoch_set = [*train_set, *epoch_extra(epoch)]
        batches = equal_length_batches(epoch_set, settings.batch_size, rng)
        total, count = 0.0, 0
        progress = tqdm(batches, desc=f"epoch {epoch}/{settings.epochs}", unit="batch", mininterval=5, leave=False)
        for batch in progress:
            loss = tagger.loss(_tensor(epoch_set, batch, 0), _tensor(epoch_set, batch, 1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tagger.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            enforce_bies(crf, labels)
            if average is not None:
                average.update()
            total, count = total + loss.item() * len(batch), count + len(batch)
            progress.set_postfix(loss=f"{total / count:.3f}", refresh=False)
        progress.close()
        if average is not None:
            average.swap()  # score, and keep if best, the averaged weights
        f1 = dev_f1(tagger, dev_set, labels)
        minutes = (time.monotonic() - started) / 60
        history.epochs.append(
            {"epoch": epoch, "loss": round(total / count, 4), "dev_f1": round(f1, 4), "minutes": round(minutes, 2)}
        )
        improved = f1 > history.best_dev_f1
        if improved:
            history.best_epoch, history.best_dev_f1 = epoch, f1
            best_state = copy.deepcopy(tagger.model.state_dict())
        if average is not None:
            average.swap()
        say(
            f"epoch {epoch}: loss {total / count:.4f}, dev F1 {f1:.4f}{' (best)' if improved else ''}, {minutes:.1f} min"
        )
        if epoch - history.best_epoch >= settings.patience:
            history.stopped_by = "patience"
            break
        per_epoch = minutes / epoch
        if minutes + per_epoch > settings.max_minutes and epoch < settings.epochs:
            history.stopped_by = "time budget"
            say(f"stopping: another epoch (~{per_epoch:.1f} min) would pass the {settings.max_minutes} min budget")
            break
    tagger.model.load_state_dict(best_state)
    history.seconds = round(time.monotonic() - started, 1)
    return history
