"""`make logs`: the logs of every program of the local cluster, merged in time order.

Reads RUN_DIR/logs/*.log (one per supervised program), nginx's access log (as "gateway") and
its error log. Each line is parsed in whichever shape its program writes:

- JSON objects: the cluster's shape (`time` UTC ISO 8601, `level`, `logger`, `event`, fields),
  the older one (`ts`, `message`), nginx's access log (`time`, `request_id`, ...) and
  Prometheus' (`ts`, `msg`, `caller`);
- Consul's `2026-12-01T08:23:50.123Z [INFO]  agent: ...`;
- supervisord's and Python logging's `2026-12-01 08:23:49,966 INFO ...` (local time);
- nginx's error log `2026/12/01 08:24:07 [error] ...` and mtail's glog `I1201 08:23:50.957965 ...`
  (local time).

A line without a time of its own (a traceback, Consul's start-up banner) stays with the line
before it. `--request-id ID` keeps the lines of one request (gateway and worker), `-f` follows.
`--compose -` reads `docker compose logs -t --no-color` on stdin instead: the service name is the
source, and a line without a time of its own takes the engine's timestamp.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, TextIO

EPOCH = datetime.fromtimestamp(0, timezone.utc)
_DAY = timedelta(days=1)
POLL_SECONDS = 0.25

_HCLOG = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) \[(\w+)\]\s+(.*)")
_PYLOG = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) (.*)")
_NGINX_ERROR = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (.*)")
_GLOG = re.compile(r"([IWEF])(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d+)\s+\d+ (.*)")
_GLOG_LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}
_TIME_KEYS = ("time", "ts", "timestamp", "@timestamp")
_EVENT_KEYS = ("event", "message", "msg")
_SHOWN = {"level", "logger", "levelname", "name", *_TIME_KEYS, *_EVENT_KEYS}


@dataclass
class Record:
    """One log line (and the lines without a time of their own that follow it)."""

    time: datetime | None
    source: str
    level: str = ""
    event: str = ""
    fields: dict = field(default_factory=dict)
    raw: str = ""
    more: list[str] = field(default_factory=list)

    def request_id(self) -> str:
        return str(self.fields.get("request_id", ""))

    def mentions(self, request_id: str) -> bool:
        return self.request_id() == request_id or request_id in self.raw

    def as_json(self) -> str:
        out = {
            "time": _iso(self.time),
            "source": self.source,
            "level": self.level,
            "event": self.event,
            **{key: value for key, value in self.fields.items() if key not in _SHOWN},
        }
        if self.more:
            out["more"] = self.more
        return json.dumps(out, ensure_ascii=False)

    def as_text(self) -> str:
        extras = " ".join(f"{key}={_compact(value)}" for key, value in self.fields.items() if key not in _SHOWN)
        head = f"{_iso(self.time):<24} {self.source:<12} {self.level[:5]:<5} {self.event}"
        return "\n".join([f"{head} {extras}".rstrip(), *(f"{'':<24} {self.source:<12} | {line}" for line in self.more)])


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compact(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


def _local(naive: datetime) -> datetime:
    """A time written without a zone is the machine's local time."""
    return naive.astimezone(timezone.utc)


def parse_time(text: str) -> datetime | None:
    """ISO 8601 with Z, an offset, or none (local time); None when it is not a time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(",", "."))
    except ValueError:
        return None
    return _local(moment) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _parse_json(line: str, source: str) -> Record | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    moment = next((parse_time(str(data[key])) for key in _TIME_KEYS if key in data), None)
    level = str(data.get("level") or data.get("levelname") or "").upper()
    event = next((str(data[key]) for key in _EVENT_KEYS if key in data), "")
    if "status" in data and "uri" in data and not event:  # nginx's access log
        event = f"{data.get('method', '')} {data['uri']} {data['status']}"
        level = level or ("ERROR" if str(data["status"]).startswith("5") else "INFO")
    if data.get("logger") or data.get("name"):
        event = f"{data.get('logger') or data.get('name')}: {event}"
    return Record(moment, source, level, event, data, line)


def _glog_time(month: str, day: str, clock: str, now: datetime) -> datetime | None:
    """glog writes no year: this year's date, or last year's if that would lie in the future."""
    for year in (now.year, now.year - 1):
        try:
            moment = _local(datetime.strptime(f"{year}-{month}-{day} {clock}", "%Y-%m-%d %H:%M:%S.%f"))
        except ValueError:
            return None
        if moment <= now.astimezone(timezone.utc) + _DAY:
            return moment
    return None


def parse_line(line: str, source: str, now: datetime | None = None) -> Record:
    """One line as a Record; time None when the line has no time of its own."""
    line = line.rstrip("\n")
    if line.startswith("{"):
        record = _parse_json(line, source)
        if record is not None:
            return record
    if match := _HCLOG.match(line.lstrip()):  # Consul indents its lines by four spaces
        return Record(parse_time(match[1]), source, match[2].upper(), match[3], {}, line)
    if match := _PYLOG.match(line):
        moment = _local(datetime.strptime(f"{match[1]}.{match[2]}", "%Y-%m-%d %H:%M:%S.%f"))
        return Record(moment, source, match[3].upper(), match[4], {}, line)
    if match := _NGINX_ERROR.match(line):
        moment = _local(datetime.strptime(match[1], "%Y/%m/%d %H:%M:%S"))
        return Record(moment, source, match[2].upper(), match[3], {}, line)
    if match := _GLOG.match(line):
        moment = _glog_time(match[2], match[3], match[4], now or datetime.now(timezone.utc))
        return Record(moment, source, _GLOG_LEVELS[match[1]], match[5], {}, line)
    return Record(None, source, "", line, {}, line)


def records(lines: Iterable[str], source: str) -> Iterator[Record]:
    """Records in file order; a line without a time joins the record before it."""
    current: Record | None = None
    for line in lines:
        if not line.strip():
            continue
        record = parse_line(line, source)
        if record.time is None and current is not None:
            current.more.append(record.raw)
            continue
        if current is not None:
            yield current
        current = record
    if current is not None:
        yield current


_COMPOSE = re.compile(r"(\S+)\s+\|\s(?:(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d))\s)?(.*)")


def compose_record(line: str) -> Record | None:
    """One line of `docker compose logs -t`: `service  | TIMESTAMP the program's line`."""
    match = _COMPOSE.match(line.rstrip("\n"))
    if not match:
        return None
    record = parse_line(match[3], match[1])
    if record.time is None and match[2]:
        record.time = parse_time(re.sub(r"(\.\d{6})\d+", r"\1", match[2]))  # ns -> µs
    return record


def compose_records(lines: Iterable[str]) -> list[Record]:
    """Every service's lines sorted by time (the engine interleaves them as they arrive)."""
    found = [record for record in map(compose_record, lines) if record is not None]
    return sorted(found, key=_key)


def sources(run_dir: Path) -> dict[str, Path]:
    """Every log of the run directory, by the name shown for it."""
    found = {path.stem: path for path in sorted((run_dir / "logs").glob("*.log"))}
    for name, path in (("gateway", run_dir / "nginx" / "access.log"), ("nginx-error", run_dir / "nginx" / "error.log")):
        if path.exists():
            found[name] = path
    return found


def _key(record: Record) -> datetime:
    return record.time or EPOCH


def merged(streams: dict[str, Iterable[str]]) -> Iterator[Record]:
    """Records of every stream in time order; records of one stream keep their order among equals."""
    return heapq.merge(*(records(lines, name) for name, lines in streams.items()), key=_key)


def select(stream: Iterable[Record], request_id: str | None) -> Iterator[Record]:
    return (record for record in stream if not request_id or record.mentions(request_id))


class Follower:
    """New complete lines of each log since the last call (a log that shrank or was replaced starts over)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.offsets: dict[str, tuple[int, int]] = {}  # name -> (inode, offset)
        self.partial: dict[str, str] = {}

    def new_lines(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, path in sources(self.run_dir).items():
            try:
                stat = path.stat()
                inode, offset = self.offsets.get(name, (stat.st_ino, 0))
                if inode != stat.st_ino or stat.st_size < offset:
                    offset, self.partial[name] = 0, ""
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
            except OSError:
                continue
            self.offsets[name] = (stat.st_ino, offset + len(chunk))
            text = self.partial.get(name, "") + chunk.decode("utf-8", errors="replace")
            *lines, self.partial[name] = text.split("\n")
            if lines:
                out[name] = lines
        return out


def write(stream: Iterable[Record], out: TextIO, as_json: bool) -> None:
    for record in stream:
        out.write((record.as_json() if as_json else record.as_text()) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    from scripts.localmode.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--follow", action="store_true", help="go on printing new lines as they come")
    parser.add_argument("--request-id", help="only the lines of this request (gateway and worker)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--run-dir", type=Path, help="default: NER_RUN_DIR, else .run")
    parser.add_argument("--compose", metavar="-", help="read `docker compose logs -t --no-color` from stdin")
    args = parser.parse_args(argv)
    if args.compose is not None:
        try:
            if args.follow:  # as they arrive: a stream cannot be sorted
                for line in sys.stdin:
                    write(select(filter(None, [compose_record(line)]), args.request_id), sys.stdout, args.json)
            else:
                write(select(compose_records(sys.stdin), args.request_id), sys.stdout, args.json)
        except KeyboardInterrupt:
            pass
        return 0
    run_dir = args.run_dir or load_config().run_dir
    if not (run_dir / "logs").is_dir():
        print(f"no logs in {run_dir} (start the cluster with `make up`)", file=sys.stderr)
        return 1
    follower = Follower(run_dir)
    try:
        write(select(merged(follower.new_lines()), args.request_id), sys.stdout, args.json)
        while args.follow:
            time.sleep(POLL_SECONDS)
            fresh = follower.new_lines()
            if fresh:
                write(select(merged(fresh), args.request_id), sys.stdout, args.json)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`make logs | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
