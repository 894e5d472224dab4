"""Baidu's pretrained LAC tagger (the lac==2.1.2 sdist on PyPI): its vocabulary and weights, read without Paddle."""

from __future__ import annotations

import struct
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scripts.training.downloads import already_fetched, sha256_of, verified

SDIST_NAME = "LAC-2.1.2.tar.gz"
SDIST_SHA256 = "22fcde0d5082d2044205ea6f6a7a9cd1f0d63e7b21b2dd5c9c73f27e7c0a3ef1"
# pip cannot download this sdist without building it (its setup.py imports paddle), so the file is
# taken from PyPI's file host at its pinned address and checked like every other download.
SDIST_URL = (
    "https://files.pythonhosted.org/packages/c3/88/966e99c95cac93730a7f3cdf92a17e2a0e924bea61b9a86ae7995feaa4fe/"
    + SDIST_NAME
)
LICENSE = "Apache-2.0"
MEMBER_PREFIX = "LAC-2.1.2/LAC/lac_model/"
TENSORS = ["word_emb", "crfw"] + [f"{kind}_{i}.{part}_0" for kind, n in (("fc", 5), ("gru", 4)) for i in range(n)
                                  for part in "wb"]  # fmt: skip
CONF_FILES = ["word.dic", "q2b.dic", "tag.dic"]
HIDDEN = 128
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / ".local" / "data" / "lac"


def _members() -> list[str]:
    return [f"model/{name}" for name in TENSORS] + [f"conf/{name}" for name in CONF_FILES]


def fetch(data_dir: Path = DEFAULT_DATA_DIR, say=print) -> Path:
    """The sdist (sha256-checked) and the model files extracted from it; idempotent."""
    data_dir = Path(data_dir)
    model_dir = data_dir / "lac_model"
    digests_file = data_dir / "extracted.sha256"
    if digests_file.is_file():
        expected = {model_dir / line.split()[1]: line.split()[0] for line in digests_file.read_text().splitlines()}
        if already_fetched(expected, say):
            return model_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / SDIST_NAME
    if not archive.is_file() or sha256_of(archive) != SDIST_SHA256:
        say(f"downloading {SDIST_NAME} from PyPI")
        partial = archive.with_suffix(".partial")
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response, open(partial, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
        verified(partial, SDIST_SHA256).replace(archive)
    with tarfile.open(archive) as tar:
        for member in _members():
            source = tar.extractfile(MEMBER_PREFIX + member)
            target = model_dir / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
    digests_file.write_text("".join(f"{sha256_of(model_dir / m)} {m}\n" for m in _members()))
    return model_dir


def read_tensor(path: Path) -> np.ndarray:
    """One tensor in Paddle's plain serialisation: versions, LoD, a TensorDesc protobuf, raw data."""
    raw = path.read_bytes()
    offset = 4  # uint32 version
    (lod_levels,) = struct.unpack_from("<Q", raw, offset)
    offset += 8
    for _ in range(lod_levels):
        (size,) = struct.unpack_from("<Q", raw, offset)
        offset += 8 + size
    offset += 4  # uint32 tensor version
    (desc_size,) = struct.unpack_from("<i", raw, offset)
    offset += 4
    desc, offset = raw[offset : offset + desc_size], offset + desc_size
    dims, position = [], 0
    while position < len(desc):  # field 1: data type (varint), field 2: dims (repeated varint)
        tag = desc[position]
        position += 1
        value, shift = 0, 0
        while True:
            byte = desc[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag == 0x08 and value != 5:
            raise ValueError(f"{path}: data type {value}, only FP32 (5) is expected")
        if tag == 0x10:
            dims.append(value)
    return np.frombuffer(raw, dtype="<f4", count=int(np.prod(dims)), offset=offset).reshape(dims).copy()


def read_dict(path: Path) -> dict[str, str]:
    """A LAC .dic file: tab-separated pairs, one per line."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if "\t" in line:
            key, value = line.split("\t", 1)
            pairs[key] = value
    return pairs


@dataclass(frozen=True)
class GruWeights:
    """One direction of one layer, in Paddle's terms: input projection (fc) then the recurrent part."""

    input_weight: np.ndarray  # (in, 3H): update, reset, candidate
    input_bias: np.ndarray  # (3H,) the fc bias plus the GRU's own bias
    recurrent_gates: np.ndarray  # (H, 2H): update, reset
    recurrent_candidate: np.ndarray  # (H, H), applied to reset * h


@dataclass(frozen=True)
class LacNetwork:
    """The pretrained network: char embeddings, 2 BiGRU layers of 128, emissions over LAC's 57 tags, CRF."""

    char_to_id: dict[str, int]
    q2b: dict[str, str]
    tags: list[str]
    embedding: np.ndarray
    layers: list[tuple[GruWeights, GruWeights]]  # (forward, backward) per layer
    emission_weight: np.ndarray
    emission_bias: np.ndarray
    crf: np.ndarray  # row 0: start, row 1: end, rows 2..: transitions[from, to]

    def char_id(self, char: str) -> int:
        """LAC's own lookup: the full-width/traditional map first, then OOV."""
        char = self.q2b.get(char, char)
        return self.char_to_id.get(char, self.char_to_id["OOV"])


def _gru(model_dir: Path, fc: int, gru: int) -> GruWeights:
    hidden = HIDDEN
    flat = read_tensor(model_dir / "model" / f"gru_{gru}.w_0").reshape(-1)
    return GruWeights(
        input_weight=read_tensor(model_dir / "model" / f"fc_{fc}.w_0"),
        input_bias=read_tensor(model_dir / "model" / f"fc_{fc}.b_0").reshape(-1)
        + read_tensor(model_dir / "model" / f"gru_{gru}.b_0").reshape(-1),
        # Paddle stores the recurrent weight as two blocks: (H, 2H) for the gates, then (H, H).
        recurrent_gates=flat[: 2 * hidden * hidden].reshape(hidden, 2 * hidden),
        recurrent_candidate=flat[2 * hidden * hidden :].reshape(hidden, hidden),
    )


def load(model_dir: Path) -> LacNetwork:
    """Every tensor of the network, named by role."""
    words = read_dict(model_dir / "conf" / "word.dic")  # id -> token
    tags = read_dict(model_dir / "conf" / "tag.dic")
    return LacNetwork(
        char_to_id={token: int(i) for i, token in words.items()},
        q2b=read_dict(model_dir / "conf" / "q2b.dic"),
        tags=[tags[str(i)] for i in range(len(tags))],
        embedding=read_tensor(model_dir / "model" / "word_emb"),
        layers=[(_gru(model_dir, 2 * k, 2 * k), _gru(model_dir, 2 * k + 1, 2 * k + 1)) for k in range(2)],
        emission_weight=read_tensor(model_dir / "model" / "fc_4.w_0"),
        emission_bias=read_tensor(model_dir / "model" / "fc_4.b_0").reshape(-1),
        crf=read_tensor(model_dir / "model" / "crfw"),
    )
