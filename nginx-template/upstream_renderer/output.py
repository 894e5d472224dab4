"""The rendered upstream file: written atomically, and put back to the last good text when nginx refuses one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Readers (nginx -t, nginx reload) never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class UpstreamFile:
    """The file nginx includes: its last good text (what nginx runs) and the last text nginx -t refused."""

    def __init__(self, path: Path):
        self.path = path
        self.good: str | None = path.read_text(encoding="utf-8") if path.exists() else None
        self.good_count: int | None = None  # instances in the good text, once this process rendered it
        self.rejected: str | None = None

    def is_live(self, text: str) -> bool:
        return text == self.good

    def is_refused(self, text: str) -> bool:
        """nginx -t refused this text already: wait for new data rather than test it again."""
        return text == self.rejected

    def write(self, text: str) -> None:
        """The candidate, for nginx -t to test."""
        write_atomically(self.path, text)

    def accept(self, text: str, count: int) -> None:
        self.good, self.good_count, self.rejected = text, count, None

    def refuse(self, text: str) -> None:
        """Put the last good text back; with nothing good yet, no file beats a broken one."""
        if self.good is None:
            self.path.unlink(missing_ok=True)
        else:
            write_atomically(self.path, self.good)
        self.rejected = text
