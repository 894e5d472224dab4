"""Mention-replacement augmentation: training copies of sentences whose entities carry other names.

Why: about 29 % of MSRA test entities never occur in training and the model recalls far fewer of
them; copies in which a mention is swapped for another name of the same type teach the model to
tag from context and name shape rather than from memorised strings. Only the training sentences
handed in are read or copied (the dev and test splits never reach this module), and every random
choice comes from a seeded generator, so one seed gives one augmented set.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from scripts.training.msra import Sentence
from scripts.training.tags import ENTITY_TYPES, OUTSIDE, spans_from_tags

# jieba's POS tags for the entity types (nrt, nrfg etc. are left out: mostly historical/foreign noise).
LEXICON_TAGS = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
# Last characters that mark a jieba nr entry as a place, building, team or a phrase, not a person.
NOT_PERSON_ENDINGS = frozenset("庙府队赛著授表注家氏公寺庄村镇山路街桥楼阁堂宫殿馆园门城县市省区州河湖江岛港")
# Endings that make a jieba ns/nt entry a real place/organisation rather than a mis-tagged word.
LOC_SUFFIXES = tuple("市县省区镇乡村山河湖江州岛港湾海峡岭峰谷城洲洋原盆地路街庄寨坝沟堡") + ("自治区", "半岛", "群岛", "运河", "大街", "广场", "机场", "水库", "草原", "高原", "沙漠")  # fmt: skip
ORG_SUFFIXES = ("公司", "集团", "银行", "医院", "法院", "检察院", "大学", "学院", "中学", "小学", "学校",
                "协会", "学会", "委员会", "研究院", "研究所", "研究会", "基金会", "联合会", "俱乐部", "报社",
                "出版社", "电视台", "电台", "通讯社", "新闻社", "剧团", "乐团", "剧院", "博物馆", "图书馆",
                "科学院", "政府", "中央", "大使馆", "总部", "工厂", "商场", "商店", "组织", "联盟", "部", "局",
                "厅", "署", "委", "社", "院", "党", "军", "队", "厂", "所", "团", "会", "校", "馆", "台")  # fmt: skip


@dataclass(frozen=True)
class AugmentSettings:
    """The "augment" section of the training config."""

    seed: int
    fraction: float = 0.5  # share of entity-bearing training sentences that get copies
    copies: int = 1  # copies made of each chosen sentence
    replace_prob: float = 0.5  # chance each mention is replaced (at least one always is)
    sources: dict[str, float] = field(default_factory=lambda: {"train": 1.0})  # source -> weight
    resample_each_epoch: bool = True  # fresh copies every epoch: more names seen at the same cost
    min_surname_count: int = 10  # a lexicon nr entry needs a first char starting this many train PER
    lexicon_dir: str = ".local/data/lexicon"


Pools = dict[str, dict[str, list[str]]]  # source -> entity type -> names


def entity_names(sentences: Iterable[Sentence]) -> dict[str, list[str]]:
    """Distinct names per type in the given (training) sentences: the in-corpus replacement source."""
    names: dict[str, set[str]] = {kind: set() for kind in ENTITY_TYPES}
    for sentence in sentences:
        for span in spans_from_tags(sentence.labels):
            names[span.type].add("".join(sentence.chars[span.start : span.end]))
    return {kind: sorted(found) for kind, found in names.items()}


def surnames(sentences: Iterable[Sentence], min_count: int) -> frozenset[str]:
    """First characters of 2-3 char PER entities seen at least min_count times: filters jieba's noisy nr."""
    counts: Counter[str] = Counter()
    for sentence in sentences:
        for span in spans_from_tags(sentence.labels):
            if span.type == "PER" and 2 <= span.end - span.start <= 3:
                counts[sentence.chars[span.start]] += 1
    return frozenset(char for char, count in counts.items() if count >= min_count)


def _all_cjk(word: str) -> bool:
    return all(unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH") for char in word)


def keep_lexicon_entry(word: str, kind: str, surname_chars: frozenset[str]) -> bool:
    """Whether a jieba entry of this type looks like a real name (the filters were tuned by reading samples)."""
    if not _all_cjk(word):
        return False
    if kind == "PER":  # 2-3 chars led by a surname; 4-char nr entries are mostly idioms
        return 2 <= len(word) <= 3 and word[0] in surname_chars and word[-1] not in NOT_PERSON_ENDINGS
    if kind == "LOC":
        return 2 <= len(word) <= 7 and word.endswith(LOC_SUFFIXES) and not word.endswith(("化", "性"))
    return 4 <= len(word) <= 14 and word.endswith(ORG_SUFFIXES)


def read_lexicon(path: Path, surname_chars: frozenset[str]) -> dict[str, list[str]]:
    """Filtered names per type from a jieba dict.txt ("word freq tag" lines)."""
    names: dict[str, set[str]] = {kind: set() for kind in ENTITY_TYPES}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] in LEXICON_TAGS:
                kind = LEXICON_TAGS[parts[2]]
                if keep_lexicon_entry(parts[0], kind, surname_chars):
                    names[kind].add(parts[0])
    return {kind: sorted(found) for kind, found in names.items()}


def entity_labels(kind: str, length: int) -> tuple[str, ...]:
    """BIES labels of one entity, the scheme the training code uses."""
    if length == 1:
        return (f"S-{kind}",)
    return (f"B-{kind}",) + (f"I-{kind}",) * (length - 2) + (f"E-{kind}",)


def replace_mentions(sentence: Sentence, choose: Mapping[int, str]) -> Sentence:
    """The sentence with the entities at the given span indices spelled as the given names."""
    spans = spans_from_tags(sentence.labels)
    chars: list[str] = []
    labels: list[str] = []
    position = 0
    for index, span in enumerate(spans):
        if index not in choose:
            continue
        chars += sentence.chars[position : span.start]
        labels += sentence.labels[position : span.start]
        name = choose[index]
        chars += list(name)
        labels += entity_labels(span.type, len(name))
        position = span.end
    chars += sentence.chars[position:]
    labels += sentence.labels[position:]
    return Sentence(tuple(chars), tuple(labels))


class Augmenter:
    """Makes seeded replacement copies of training sentences from weighted name sources."""

    def __init__(self, settings: AugmentSettings, pools: Pools) -> None:
        self.settings = settings
        self.pools = pools
        self._sources = [name for name, weight in settings.sources.items() if weight > 0]
        self._weights = [settings.sources[name] for name in self._sources]
        missing = [name for name in self._sources if name not in pools]
        if missing:
            raise ValueError(f"augment sources without names: {missing}")

    def _name(self, kind: str, rng: random.Random) -> str | None:
        source = rng.choices(self._sources, self._weights)[0]
        names = self.pools[source].get(kind) or self.pools.get("train", {}).get(kind)
        return rng.choice(names) if names else None

    def copy(self, sentence: Sentence, rng: random.Random) -> Sentence | None:
        """One copy with each mention replaced with replace_prob (at least one); None if it has none."""
        spans = spans_from_tags(sentence.labels)
        if not spans:
            return None
        picked = [i for i in range(len(spans)) if rng.random() < self.settings.replace_prob]
        if not picked:
            picked = [rng.randrange(len(spans))]
        choose: dict[int, str] = {}
        for index in picked:
            name = self._name(spans[index].type, rng)
            if name is not None:
                choose[index] = name
        return replace_mentions(sentence, choose) if choose else None

    def copies(self, sentences: Sequence[Sentence], round_: int = 0) -> list[Sentence]:
        """The extra sentences for one round (an epoch when resampling); same seed and round, same output."""
        rng = random.Random(f"{self.settings.seed}:{round_}")
        extra: list[Sentence] = []
        for sentence in sentences:
            if all(label == OUTSIDE for label in sentence.labels):
                continue
            if rng.random() >= self.settings.fraction:
                continue
            for _ in range(self.settings.copies):
                made = self.copy(sentence, rng)
                if made is not None:
                    extra.append(made)
        return extra


def build_pools(settings: AugmentSettings, train_sentences: Sequence[Sentence], lexicon_path: Path | None) -> Pools:
    """Name sources from the training split (never dev/test) and, if asked for, the jieba lexicon."""
    pools: Pools = {"train": entity_names(train_sentences)}
    if settings.sources.get("lexicon", 0) > 0:
        if lexicon_path is None:
            raise ValueError("augment source 'lexicon' needs the lexicon file")
        pools["lexicon"] = read_lexicon(lexicon_path, surnames(train_sentences, settings.min_surname_count))
    return pools
