#!/usr/bin/env python3
"""Keep nginx's upstream in step with Consul's healthy `ner-worker` instances.

This is the renderer used where the consul-template binary is not available.
It renders the *same* template file (upstream.ctmpl) with a small interpreter of
the Go-template subset that file uses, with consul-template's semantics:

* `service "name"` returns passing instances only; `service "name|passing,warning"`
  returns instances whose aggregated status is in the list ("any" accepts all).
* An instance's status aggregates all its checks (node checks included):
  maintenance > critical > warning > passing; no checks means passing.
* Instances are sorted by node name, then by service ID.
* `.Address` is the service address, or the node address when that is empty.

Beyond consul-template, a change that only moves weights or warning states (the same
`server address:port` members) reloads nginx at most once per `--hold-down`: every reload
closes idle client keep-alive connections, and an overloaded worker's health flaps between
passing and warning every few seconds. A member joining or leaving is never held.

Anything outside the subset raises TemplateError, so a template that
consul-template would render differently is refused instead of guessed at.

Run `render_upstream.py --help` for the command line. Local tooling can call
`render(template_text, instances)` directly.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import requests

log = logging.getLogger("render_upstream")

STARTUP_MESSAGE = "renderer: project renderer (consul-template not available)"
BLOCK_WAIT_SECONDS = 30.0
READ_TIMEOUT = 10.0  # a read that does not block
# After Consul was unreachable or lost its state (a restarted dev agent), workers register
# again within seconds (their registrar re-checks every 2 s): until then an instance that
# seems to be gone is kept in the upstream, so the gateway does not turn away traffic.
DEFAULT_RECOVERY_GRACE = 15.0
DEFAULT_WAIT = "0.2s:2s"
# consul-template's default max_stale: any server may answer unless it lost the leader longer.
DEFAULT_MAX_STALE = 2.0
# Weight-only reloads at most every 15 s: several passing/warning flaps of an overloaded worker
# (its warning lasts seconds) become one reload, and a worker's weight is never more than 15 s
# behind its health, which bounds how long a recovered worker runs at a tenth of its share.
DEFAULT_HOLD_DOWN = "15s"
HOLD_DOWN_ENV = "NER_RENDER_HOLD_DOWN"

# Check IDs that Consul uses for maintenance mode (see consul/api/health.go).
NODE_MAINTENANCE = "_node_maintenance"
SERVICE_MAINTENANCE_PREFIX = "_service_maintenance:"
STATUS_FILTERS = ("any", "passing", "warning", "critical", "maintenance")
# Same shape consul-template accepts for a service name (no tag, datacenter or near).
SERVICE_NAME_RE = re.compile(r"[\w\-/]+")


class TemplateError(ValueError):
    """The template uses something this interpreter does not implement, or misuses it."""


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Instance:
    """One service instance as consul-template's HealthService exposes it to templates."""

    node: str
    id: str
    name: str
    address: str
    port: int
    status: str
    node_address: str = ""

    @classmethod
    def from_health_entry(cls, entry: Mapping[str, Any]) -> "Instance":
        """Build from one element of Consul's /v1/health/service/<name> answer."""
        node, service = entry["Node"], entry["Service"]
        return cls(
            node=node["Node"],
            id=service["ID"],
            name=service["Service"],
            address=service.get("Address") or node["Address"],
            port=int(service["Port"]),
            status=aggregate_status(entry.get("Checks") or []),
            node_address=node["Address"],
        )


# Template field name -> Instance attribute, exactly the fields templates may read.
INSTANCE_FIELDS = {"Node": "node", "ID": "id", "Name": "name", "Address": "address",
                   "Port": "port", "Status": "status", "NodeAddress": "node_address"}


def aggregate_status(checks: Iterable[Mapping[str, Any]]) -> str:
    """One status for all checks of an entry, as consul's api.HealthChecks.AggregatedStatus."""
    seen = set()
    for check in checks:
        check_id = check.get("CheckID", "")
        if check_id == NODE_MAINTENANCE or check_id.startswith(SERVICE_MAINTENANCE_PREFIX):
            seen.add("maintenance")
            continue
        status = check.get("Status")
        if status not in ("passing", "warning", "critical"):
            return ""  # an unknown status matches no filter except "any"
        seen.add(status)
    for status in ("maintenance", "critical", "warning"):
        if status in seen:
            return status
    return "passing"


# --------------------------------------------------------------------------- service query


@dataclass(frozen=True)
class ServiceQuery:
    """The argument of `service "name|filter,..."`."""

    name: str
    filters: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, line: int) -> "ServiceQuery":
        """Parse like consul-template: no filter means passing only; filters are sorted."""
        name, _, filter_text = text.partition("|")
        if not SERVICE_NAME_RE.fullmatch(name):
            raise TemplateError(f"line {line}: unsupported service query {text!r}: only "
                                f"'name' or 'name|status,...' (no tag, @datacenter or ~near)")
        filters = [f.strip() for f in filter_text.split(",") if f.strip()] if filter_text else []
        for item in filters:
            if item not in STATUS_FILTERS:
                raise TemplateError(f"line {line}: invalid status filter {item!r} in {text!r}")
        return cls(name=name, filters=tuple(sorted(filters)) or ("passing",))

    def accepts(self, status: str) -> bool:
        """Whether an instance with this aggregated status is returned."""
        return "any" in self.filters or status in self.filters

    def select(self, instances: Iterable[Instance], name: str | None = None) -> list[Instance]:
        """Filter by name and status, then order by node then ID as consul-template does."""
        wanted = name or self.name
        chosen = [i for i in instances if i.name == wanted and self.accepts(i.status)]
        return sorted(chosen, key=lambda i: (i.node, i.id))


# --------------------------------------------------------------------------- template parsing

TRIM_CHARS = " \t\r\n"  # what Go's text/template trims next to {{- and -}}
TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<field>\.[A-Za-z_]\w*)
    | (?P<word>[A-Za-z_]\w*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<other>\S+)
    )""", re.VERBOSE)

# The parsed template is a small tree of these nodes; execution walks it.


@dataclass
class Text:
    text: str


@dataclass
class Field:
    name: str
    line: int


@dataclass
class Literal:
    value: str


@dataclass
class Eq:
    left: Union[Field, Literal]
    right: Union[Field, Literal]
    line: int


@dataclass
class Range:
    query: ServiceQuery
    body: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


@dataclass
class If:
    condition: Eq
    body: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


@dataclass
class Action:
    """One {{ ... }} with its source line, after trim markers have been applied."""

    tokens: list[tuple[str, str]]
    line: int


def split_actions(source: str) -> list[Union[str, Action]]:
    """Cut the source into text and actions, applying trim markers and dropping comments."""
    parts: list[Union[str, Action]] = []
    pos, trim_next = 0, False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(TRIM_CHARS)
        if start < 0:
            parts.append(text)
            return parts
        line = source.count("\n", 0, start) + 1
        inner_start = start + 2
        if source[inner_start:inner_start + 1] == "-" and source[inner_start + 1:inner_start + 2] != "" \
                and source[inner_start + 1] in TRIM_CHARS:
            text = text.rstrip(TRIM_CHARS)  # "{{- " trims the white space before the action
            inner_start += 2
        parts.append(text)
        inner, pos, is_comment = _action_body(source, inner_start, line)
        trim_next = len(inner) >= 2 and inner[-1] == "-" and inner[-2] in TRIM_CHARS
        if trim_next:
            inner = inner[:-2]  # " -}}" trims the white space after the action
        if not is_comment:
            parts.append(Action(tokens=_tokenize(inner, line), line=line))


def _action_body(source: str, start: int, line: int) -> tuple[str, int, bool]:
    """The text inside one action, the index past its closing braces, and if it is a comment."""
    if source.startswith("/*", start):  # Go: a comment starts right after "{{" or "{{- "
        close = source.find("*/", start + 2)
        if close < 0:
            raise TemplateError(f"line {line}: unclosed comment")
        after = close + 2
        for tail in ("}}", " -}}", "\t-}}", "\r-}}", "\n-}}"):
            if source.startswith(tail, after):
                return source[start:after + len(tail) - 2], after + len(tail), True
        raise TemplateError(f"line {line}: comment ends before closing delimiter")
    i = start
    while i < len(source):
        char = source[i]
        if char in "\"`":
            closing = source.find(char, i + 1) if char == "`" else _string_end(source, i, line)
            if closing < 0:
                raise TemplateError(f"line {line}: unterminated string")
            i = closing + 1
            continue
        if source.startswith("}}", i):
            return source[start:i], i + 2, False
        i += 1
    raise TemplateError(f"line {line}: unclosed action")


def _string_end(source: str, start: int, line: int) -> int:
    """Index of the quote closing the double-quoted string that opens at start."""
    i = start + 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source[i] == "\n":
            raise TemplateError(f"line {line}: newline in string")
        if source[i] == '"':
            return i
        i += 1
    return -1


def _tokenize(inner: str, line: int) -> list[tuple[str, str]]:
    """Tokens of one action; anything outside the subset is reported with its line."""
    tokens = []
    for match in TOKEN_RE.finditer(inner):
        kind = match.lastgroup
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "other":
            raise TemplateError(f"line {line}: unsupported syntax {value!r} in {{{{{inner}}}}}; "
                                "supported: range service, if eq, else, end, .Field, strings")
        tokens.append((kind, value))
    if not tokens:
        raise TemplateError(f"line {line}: empty action")
    return tokens


def _literal(kind: str, value: str) -> str:
    """The value of a Go string token."""
    if kind == "raw":
        return value[1:-1]
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"unsupported escape in string {value}") from exc


class Parser:
    """Builds the node tree from split_actions() output."""

    def __init__(self, parts: list[Union[str, Action]]):
        self.parts = parts
        self.pos = 0

    def parse(self) -> list:
        nodes, stop = self._nodes(inside=None)
        if stop is not None:
            raise TemplateError(f"line {stop.line}: unexpected {{{{{stop.tokens[0][1]}}}}}")
        return nodes

    def _nodes(self, inside: str | None) -> tuple[list, Action | None]:
        """Nodes until an else/end keyword (returned) or the end of the source."""
        nodes: list = []
        while self.pos < len(self.parts):
            part = self.parts[self.pos]
            self.pos += 1
            if isinstance(part, str):
                if part:
                    nodes.append(Text(part))
                continue
            keyword = part.tokens[0]
            if keyword == ("word", "end") or keyword == ("word", "else"):
                if inside is None:
                    raise TemplateError(f"line {part.line}: {{{{{keyword[1]}}}}} without range/if")
                if len(part.tokens) != 1:
                    raise TemplateError(f"line {part.line}: unsupported '{keyword[1]} ...' "
                                        "(no 'else if' / 'else with')")
                return nodes, part
            nodes.append(self._action(part))
        if inside is not None:
            raise TemplateError(f"missing {{{{end}}}} for {inside}")
        return nodes, None

    def _action(self, action: Action) -> Any:
        kind, value = action.tokens[0]
        if (kind, value) == ("word", "range"):
            node = Range(query=self._range_query(action))
        elif (kind, value) == ("word", "if"):
            node = If(condition=self._condition(action))
        else:
            return self._output(action)
        node.body, stop = self._nodes(inside=value)
        if stop.tokens[0][1] == "else":
            node.otherwise, stop = self._nodes(inside=value)
            if stop.tokens[0][1] != "end":
                raise TemplateError(f"line {stop.line}: second {{{{else}}}} in one {value}")
        return node

    @staticmethod
    def _range_query(action: Action) -> ServiceQuery:
        tokens = action.tokens
        if len(tokens) != 3 or tokens[1] != ("word", "service") or tokens[2][0] not in ("string", "raw"):
            raise TemplateError(f"line {action.line}: only 'range service \"name|filters\"' is "
                                "supported (no variables, pipes or other functions)")
        return ServiceQuery.parse(_literal(*tokens[2]), action.line)

    @staticmethod
    def _condition(action: Action) -> Eq:
        tokens = action.tokens
        if len(tokens) != 4 or tokens[1] != ("word", "eq"):
            raise TemplateError(f"line {action.line}: only 'if eq A B' is supported")
        return Eq(_operand(tokens[2], action.line), _operand(tokens[3], action.line), action.line)

    @staticmethod
    def _output(action: Action) -> Union[Field, Literal]:
        if len(action.tokens) != 1:
            raise TemplateError(f"line {action.line}: unsupported action "
                                f"{' '.join(v for _, v in action.tokens)!r}")
        return _operand(action.tokens[0], action.line)


def _operand(token: tuple[str, str], line: int) -> Union[Field, Literal]:
    """A .Field or a string literal; functions and keywords are not values here."""
    kind, value = token
    if kind == "field":
        if value[1:] not in INSTANCE_FIELDS:
            raise TemplateError(f"line {line}: unsupported field {value} "
                                f"(supported: {', '.join(sorted(INSTANCE_FIELDS))})")
        return Field(value[1:], line)
    if kind in ("string", "raw"):
        return Literal(_literal(kind, value))
    raise TemplateError(f"line {line}: unsupported {value!r} (functions other than "
                        "'service' and 'eq' are not implemented)")


# --------------------------------------------------------------------------- execution


@dataclass
class Template:
    """A parsed upstream template."""

    nodes: list

    @classmethod
    def parse(cls, source: str) -> "Template":
        return cls(Parser(split_actions(source)).parse())

    def queries(self) -> list[ServiceQuery]:
        """Every service query in the template, in source order."""
        found: list[ServiceQuery] = []

        def walk(nodes: list) -> None:
            for node in nodes:
                if isinstance(node, Range):
                    found.append(node.query)
                if isinstance(node, (Range, If)):
                    walk(node.body)
                    walk(node.otherwise)
        walk(self.nodes)
        return found

    def service_name(self) -> str:
        """The one Consul service this template renders (the renderer watches one service)."""
        names = {q.name for q in self.queries()}
        if len(names) != 1:
            raise TemplateError(f"template must query exactly one service, found {sorted(names)}")
        return names.pop()

    def execute(self, lookup: Callable[[ServiceQuery], list[Instance]]) -> str:
        """Render with lookup(query) giving the already filtered, ordered instances."""
        out: list[str] = []
        _run(self.nodes, None, lookup, out)
        return "".join(out)


def _run(nodes: list, dot: Instance | None, lookup: Callable, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Range):
            items = lookup(node.query)
            for item in items:
                _run(node.body, item, lookup, out)
            if not items:
                _run(node.otherwise, dot, lookup, out)
        elif isinstance(node, If):
            branch = node.body if _equal(node.condition, dot) else node.otherwise
            _run(branch, dot, lookup, out)
        else:
            out.append(str(_value(node, dot)))


def _value(operand: Union[Field, Literal], dot: Instance | None) -> Any:
    if isinstance(operand, Literal):
        return operand.value
    if dot is None:
        raise TemplateError(f"line {operand.line}: .{operand.name} used outside range")
    return getattr(dot, INSTANCE_FIELDS[operand.name])


def _equal(condition: Eq, dot: Instance | None) -> bool:
    """Go's eq: comparing different types is an error, not false."""
    left, right = _value(condition.left, dot), _value(condition.right, dot)
    if type(left) is not type(right):
        raise TemplateError(f"line {condition.line}: eq: incompatible types for comparison")
    return left == right


def render(template_text: str, instances: Iterable[Union[Instance, Mapping[str, Any]]],
           service: str | None = None) -> str:
    """Render the upstream template for these instances (Instance or raw Consul health entries).

    Pass all instances of the service: the template's status filter and the
    node/ID ordering are applied here. `service` renames the template's service.
    """
    template = Template.parse(template_text)
    return render_parsed(template, [as_instance(i) for i in instances], service)


def render_parsed(template: Template, instances: list[Instance], service: str | None = None) -> str:
    """render() for an already parsed template."""
    return template.execute(lambda query: query.select(instances, service))


def as_instance(item: Union[Instance, Mapping[str, Any]]) -> Instance:
    return item if isinstance(item, Instance) else Instance.from_health_entry(item)


def fill_nginx_conf(template_text: str, prefix: str, upstream_conf: str,
                    listen: str = "127.0.0.1:8080") -> str:
    """nginx.conf.tmpl filled in; its nginx variables are written $$name so substitute() works."""
    return string.Template(template_text).substitute(
        PREFIX=prefix, LISTEN=listen, UPSTREAM_CONF=upstream_conf)


# --------------------------------------------------------------------------- Consul


class ConsulUnavailable(RuntimeError):
    """Consul did not answer usefully; keep the last good config and retry later."""

    def __init__(self, message: str, reached: bool):
        super().__init__(message)
        # True when the agent itself answered (an HTTP error): its registrations are intact,
        # so what it lists next is not a restart's half-empty catalog.
        self.reached = reached


class Consul:
    """Blocking queries on /v1/health/service/<name>, stale-tolerant like consul-template."""

    def __init__(self, addr: str, token: str = "", max_stale: float = DEFAULT_MAX_STALE):
        self.base = addr if "://" in addr else f"http://{addr}"
        self.max_stale = max_stale
        self.session = requests.Session()
        if token:
            self.session.headers["X-Consul-Token"] = token

    def health_service(self, name: str, index: int, wait: float) -> tuple[list[dict], int]:
        """All entries of the service (any status) and the X-Consul-Index of the answer.

        A stale read is answered by whichever server the agent asks (the agent itself when it
        is a server), so a blocking query is not stuck on a leader that just dropped off the
        network. An answer from a server that has not heard from the leader for longer than
        max_stale is read again from the leader."""
        params: dict[str, str] = {}
        if index > 0:
            params = {"index": str(index), "wait": f"{max(int(wait * 1000), 1)}ms"}
        timeout = wait + wait / 16 + 5 if index > 0 else READ_TIMEOUT  # Consul adds up to wait/16 jitter
        stale = self.max_stale > 0
        entries, new_index, last_contact = self._get(name, {**params, "stale": ""} if stale else params, timeout)
        if stale and last_contact > self.max_stale:
            entries, new_index, _ = self._get(name, {}, READ_TIMEOUT)
        return entries, new_index

    def _get(self, name: str, params: dict[str, str], timeout: float) -> tuple[list[dict], int, float]:
        """One request: entries, X-Consul-Index, and X-Consul-LastContact in seconds."""
        try:
            response = self.session.get(f"{self.base}/v1/health/service/{name}",
                                        params=params, timeout=timeout)
        except requests.RequestException as exc:
            raise ConsulUnavailable(f"{type(exc).__name__}: {exc}", reached=False) from exc
        try:
            response.raise_for_status()
            entries = response.json()
            new_index = int(response.headers.get("X-Consul-Index", "0"))
            last_contact = int(response.headers.get("X-Consul-LastContact", "0")) / 1000
        except (requests.RequestException, ValueError) as exc:
            raise ConsulUnavailable(f"{type(exc).__name__}: {exc}", reached=True) from exc
        return entries, new_index, last_contact


def next_index(sent: int, received: int) -> int:
    """Consul's rules: reset to 0 when the index goes backwards, never block on 0."""
    if received < sent:
        return 0
    return max(received, 1)


# --------------------------------------------------------------------------- reload hold-down

SERVER_DIRECTIVE_RE = re.compile(r"\s*server\s+([^\s;]+)")


def upstream_members(text: str) -> tuple[str, ...]:
    """The `server address:port` entries of a rendered upstream, sorted: what nginx routes to."""
    members = []
    for line in text.splitlines():
        match = SERVER_DIRECTIVE_RE.match(line.split("#", 1)[0])
        if match:
            members.append(match.group(1))
    return tuple(sorted(members))


@dataclass(frozen=True)
class Decision:
    """Whether a rendered change may reach nginx now, what kind of change it is, and why."""

    apply: bool
    change: str  # "first" (no live upstream), "membership" or "weights"
    reason: str
    due_at: float | None = None  # a held change may be applied from then on


class HoldDown:
    """Weight-only reloads at most once per interval; membership changes are never held."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.last_weights_reload: float | None = None

    def decide(self, live: str | None, candidate: str) -> Decision:
        """Judge a candidate upstream against the live one."""
        if live is None:
            return Decision(True, "first", "no live upstream yet")
        if upstream_members(live) != upstream_members(candidate):
            return Decision(True, "membership", "an instance joined or left")
        if self.interval <= 0:
            return Decision(True, "weights", "hold-down off")
        due_at = None if self.last_weights_reload is None else self.last_weights_reload + self.interval
        if due_at is None or self.clock() >= due_at:
            return Decision(True, "weights", "no weight-only reload within the hold-down")
        return Decision(False, "weights", "weight-only change within the hold-down", due_at)

    def applied(self, decision: Decision) -> None:
        """Start the interval when a weight-only change reached nginx."""
        if decision.change == "weights":
            self.last_weights_reload = self.clock()


@dataclass(frozen=True)
class Held:
    """A weight-only change waiting for its hold-down to pass."""

    text: str
    count: int
    decision: Decision
    since: float


# --------------------------------------------------------------------------- nginx control


@dataclass(frozen=True)
class NginxControl:
    """How to test a candidate config and make nginx load it."""

    check_cmd: Sequence[str] | None
    reload_cmd: Sequence[str] | None
    pid_file: Path | None = None  # reload only when nginx runs (pid file present)

    def check(self) -> tuple[bool, str]:
        return _run_command(self.check_cmd) if self.check_cmd else (True, "")

    def reload(self) -> tuple[bool | None, str]:
        """True/False for the reload result; None when there was nothing to reload."""
        if not self.reload_cmd:
            return None, "no reload command"
        if self.pid_file is not None and not self.pid_file.exists():
            return None, "nginx not running"
        return _run_command(self.reload_cmd)


def _run_command(argv: Sequence[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stdout + done.stderr).strip()[-2000:]


def nginx_control(args: argparse.Namespace) -> NginxControl:
    """Commands from --check-cmd/--reload-cmd, else from --nginx-prefix/--nginx-conf."""
    check = ["/bin/sh", "-c", args.check_cmd] if args.check_cmd else None
    reload = ["/bin/sh", "-c", args.reload_cmd] if args.reload_cmd else None
    pid_file = None
    if args.nginx_prefix:
        prefix = Path(args.nginx_prefix)
        conf = args.nginx_conf or str(prefix / "nginx.conf")
        base = ["-p", str(prefix), "-c", conf, "-e", str(prefix / "error.log")]
        check = check or [args.nginx_bin, "-t", "-q", *base]
        if reload is None:
            reload, pid_file = [args.nginx_bin, "-s", "reload", *base], prefix / "nginx.pid"
    if args.no_reload:
        reload = None
    return NginxControl(check_cmd=check, reload_cmd=reload, pid_file=pid_file)


def write_atomically(path: Path, text: str) -> None:
    """Readers (nginx -t, nginx reload) never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the loop


class Shutdown(Exception):
    """SIGTERM/SIGINT arrived while waiting: leave the loop."""


@dataclass
class Outcome:
    """What apply() did: whether nginx got a new upstream, and whether all went well."""

    changed: bool
    ok: bool


class Renderer:
    """Watches Consul, renders, and swaps the upstream file only through a passed nginx -t."""

    def __init__(self, template: Template, service: str, consul: Consul, out: Path,
                 nginx: NginxControl, wait: tuple[float, float],
                 recovery_grace: float = DEFAULT_RECOVERY_GRACE, hold_down: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.template = template
        self.service = service
        self.consul = consul
        self.out = out
        self.nginx = nginx
        self.wait_min, self.wait_max = wait
        self.index = 0
        self.good_text = out.read_text(encoding="utf-8") if out.exists() else None
        self.good_count: int | None = None
        self.rejected_text: str | None = None
        self.stopping = False
        self.interruptible = False
        self.recovery_grace = recovery_grace
        self.recovering_until = 0.0
        self.fetched: list[Instance] = []  # what the newest render was made from
        self.applied: list[Instance] = []  # what the live upstream was made from
        self.hold_down = HoldDown(hold_down, clock)
        self.held: Held | None = None

    # -- signals -------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Stop now if we are only waiting; otherwise finish the current write/reload first."""
        log.info("signal received, stopping", extra={"fields": {"signal": signum}})
        self.stopping = True
        if self.interruptible:
            raise Shutdown()

    def _sleep(self, seconds: float) -> None:
        self.interruptible = True
        try:
            if not self.stopping:
                time.sleep(seconds)
        finally:
            self.interruptible = False

    # -- Consul --------------------------------------------------------------
    def fetch(self, wait: float) -> tuple[str, int, bool]:
        """Rendered text, instance count, and whether Consul's index moved."""
        self.interruptible = True
        try:
            if self.stopping:
                raise Shutdown()
            entries, received = self.consul.health_service(self.service, self.index, wait)
        finally:
            self.interruptible = False
        sent, self.index = self.index, next_index(self.index, received)
        if self.index == 0:
            log.warning("consul index went backwards; reading afresh",
                        extra={"fields": {"sent": sent, "received": received}})
            self.start_recovery("consul lost its state")
        instances = self.keep_during_recovery([Instance.from_health_entry(e) for e in entries])
        self.fetched = instances
        count = len(self.template.queries()[0].select(instances, self.service))
        return render_parsed(self.template, instances, self.service), count, received != sent

    def note_outage(self, exc: ConsulUnavailable, retry_in: float) -> None:
        """Keep the upstream; only an agent that could not be reached may come back forgetful."""
        log.warning("consul unavailable; keeping the last good upstream",
                    extra={"fields": {"error": str(exc), "agent_answered": exc.reached, "retry_in_s": retry_in}})
        self.index = 0  # after an outage the agent may be a new one
        if not exc.reached:
            self.start_recovery("consul unreachable")

    def start_recovery(self, reason: str) -> None:
        """Hold on to the instances we route to while their registrations come back."""
        self.recovering_until = self.clock() + self.recovery_grace
        log.warning("keeping current instances while consul recovers",
                    extra={"fields": {"reason": reason, "grace_s": self.recovery_grace}})

    def recovering(self) -> bool:
        return self.clock() < self.recovering_until

    def keep_during_recovery(self, instances: list[Instance]) -> list[Instance]:
        """During recovery, instances of the live upstream stay while Consul does not list them
        (yet) or lists them critical: a fresh registration is critical until its first check passes.
        One in maintenance (draining) is let go at once."""
        if not self.recovering():
            return instances
        current = {i.id: i for i in instances}
        # An address Consul now lists under another ID has a new owner (a restarted worker on the
        # same port): the old instance is gone, and keeping it would route to the newcomer before
        # its model is loaded.
        owners = {(i.address, i.port): i.id for i in instances}
        for kept in self.applied:
            if owners.get((kept.address, kept.port), kept.id) != kept.id:
                continue
            if current.get(kept.id) is None or current[kept.id].status == "critical":
                current[kept.id] = kept
        return list(current.values())

    def settle(self, text: str, count: int) -> tuple[str, int]:
        """consul-template's wait=MIN:MAX: wait for MIN without changes, at most MAX in all."""
        started = self.clock()
        quiet_until = started + self.wait_min
        hard_stop = started + self.wait_max
        while True:
            remaining = min(quiet_until, hard_stop) - self.clock()
            if remaining <= 0.001:
                return text, count
            try:
                new_text, new_count, _ = self.fetch(remaining)
            except ConsulUnavailable:
                return text, count
            if new_text != text:
                text, count = new_text, new_count
                quiet_until = self.clock() + self.wait_min

    # -- applying ------------------------------------------------------------
    def apply(self, text: str, count: int, waited_ms: float = 0.0, decision: Decision | None = None) -> Outcome:
        """Write, nginx -t, reload; on a failed test put the last good file back."""
        if text == self.good_text:
            return Outcome(changed=False, ok=True)
        if text == self.rejected_text:
            return Outcome(changed=False, ok=False)  # already refused; wait for new data
        decision = decision or self.hold_down.decide(self.good_text, text)
        held_ms = None if self.held is None else round((self.clock() - self.held.since) * 1000, 1)
        self.held = None  # this attempt carries it, whatever nginx -t says
        started = self.clock()
        write_atomically(self.out, text)
        checked, check_output = self.nginx.check()
        fields: dict[str, Any] = {"event": "render", "old_count": self.good_count, "new_count": count,
                                  "config_ok": checked, "reloaded": False, "reload_ok": None,
                                  "waited_ms": waited_ms, "decision": "refused", "change": decision.change,
                                  "reason": decision.reason, "held_ms": held_ms}
        if not checked:
            self._restore()
            self.rejected_text = text
            fields["check_output"] = check_output
            fields["took_ms"] = round((self.clock() - started) * 1000, 1)
            log.error("candidate upstream failed the nginx config test; kept the last good one",
                      extra={"fields": fields})
            return Outcome(changed=False, ok=False)
        reloaded, reload_output = self.nginx.reload()
        self.good_text, self.good_count, self.rejected_text = text, count, None
        self.applied = self.fetched
        self.hold_down.applied(decision)
        fields.update(reloaded=reloaded is True, reload_ok=reloaded,
                      decision="reloaded" if reloaded is True else "written",
                      took_ms=round((self.clock() - started) * 1000, 1))
        if reloaded is False:
            fields["reload_output"] = reload_output
            log.error("nginx reload failed", extra={"fields": fields})
        else:
            if reloaded is None:
                fields["note"] = reload_output  # why there was no reload (e.g. nginx not running)
            log.info("upstream rendered", extra={"fields": fields})
        return Outcome(changed=True, ok=reloaded is not False)

    def hold(self, text: str, count: int, decision: Decision) -> None:
        """Keep a weight-only change until its hold-down passes; log it once per distinct upstream."""
        since = self.held.since if self.held is not None else self.clock()
        fresh = self.held is None or self.held.text != text
        self.held = Held(text, count, decision, since)
        if fresh:
            log.info("weight-only change held down", extra={"fields": {
                "event": "render", "decision": "held", "change": decision.change, "reason": decision.reason,
                "old_count": self.good_count, "new_count": count, "reloaded": False,
                "due_in_ms": round(max((decision.due_at or 0) - self.clock(), 0) * 1000, 1)}})

    def _restore(self) -> None:
        if self.good_text is None:
            self.out.unlink(missing_ok=True)  # nothing good yet: no file beats a broken one
        else:
            write_atomically(self.out, self.good_text)

    # -- main loops ----------------------------------------------------------
    def run_once(self, deadline_seconds: float = 10.0) -> int:
        """Render the current state once (retrying Consul briefly); 0 when the file is good."""
        deadline = self.clock() + deadline_seconds
        delay = 0.2
        while True:
            try:
                text, count, _ = self.fetch(0)
                break
            except ConsulUnavailable as exc:
                if self.clock() + delay > deadline:
                    log.error("consul unavailable", extra={"fields": {"error": str(exc)}})
                    return 1
                self._sleep(delay)
                delay = min(delay * 2, 2.0)
        if text == self.good_text:
            log.info("upstream unchanged", extra={"fields": {"event": "render", "new_count": count,
                                                             "reloaded": False}})
            return 0
        once = Decision(True, self.hold_down.decide(self.good_text, text).change, "render once")
        return 0 if self.apply(text, count, decision=once).ok else 1

    def run_forever(self) -> int:
        """Blocking queries until SIGTERM; Consul outages back off and keep the last good file."""
        delay = 0.5
        while not self.stopping:
            # While recovering, wake up when the grace ends to drop what never came back.
            block = BLOCK_WAIT_SECONDS
            if self.recovering():
                block = min(block, max(self.recovering_until - self.clock(), 0.05))
            if self.held is not None and self.held.decision.due_at is not None:
                # Consul lengthens a blocking wait by up to 1/16: ask for less, so the poll ends by the due time.
                block = min(block, max((self.held.decision.due_at - self.clock()) * 16 / 17, 0.01))
            try:
                text, count, moved = self.fetch(block)
            except ConsulUnavailable as exc:
                self.note_outage(exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            if text == self.good_text:
                self.good_count = count
            if self.unchanged(text):
                if moved:
                    log.debug("consul changed, upstream did not", extra={"fields": {"index": self.index}})
                continue
            started = self.clock()
            if moved or self.held is None or text != self.held.text:
                text, count = self.settle(text, count)
                if self.unchanged(text):
                    continue
            waited_ms = round((self.clock() - started) * 1000, 1)
            decision = self.hold_down.decide(self.good_text, text)
            if decision.apply:
                self.apply(text, count, waited_ms=waited_ms, decision=decision)
            else:
                self.hold(text, count, decision)
        return 0

    def unchanged(self, text: str) -> bool:
        """Nothing to do for this render: it is live, or nginx -t refused it; a held change it
        replaces is dropped when Consul went back to the live upstream."""
        if text == self.good_text and self.held is not None:
            log.info("held change withdrawn: consul is back to the live upstream",
                     extra={"fields": {"event": "render", "decision": "withdrawn", "reloaded": False}})
            self.held = None
        return text == self.good_text or text == self.rejected_text


# --------------------------------------------------------------------------- logging / CLI


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so the gateway's logs parse like the workers'."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                   "logger": record.name, "msg": record.getMessage()}
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, ensure_ascii=False, default=str)


def parse_wait(value: str) -> tuple[float, float]:
    """'MIN:MAX' or 'MIN' with Go-like units (200ms, 2s, 1m) or plain seconds."""
    low, _, high = value.partition(":")
    wait_min = _seconds(low)
    wait_max = _seconds(high) if high else wait_min * 4
    if wait_max < wait_min:
        raise argparse.ArgumentTypeError("--wait MAX must be >= MIN")
    return wait_min, wait_max


def _seconds(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}")
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consul", default=os.environ.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500"),
                        help="Consul HTTP address (CONSUL_HTTP_ADDR); token from CONSUL_HTTP_TOKEN")
    parser.add_argument("--template", type=Path, default=here / "upstream.ctmpl")
    parser.add_argument("--out", type=Path, required=True, help="rendered upstream file")
    parser.add_argument("--service", help="Consul service to watch (default: the template's)")
    parser.add_argument("--wait", type=parse_wait, default=DEFAULT_WAIT,
                        help="quiescence MIN:MAX like consul-template's wait (default %(default)s)")
    parser.add_argument("--hold-down", type=_seconds, default=os.environ.get(HOLD_DOWN_ENV, DEFAULT_HOLD_DOWN),
                        help="a change of weights or warning states only (same server members) reloads "
                             "nginx at most once per this interval; joins and leaves are never held; "
                             f"0 = every change at once ({HOLD_DOWN_ENV}, default %(default)s)")
    parser.add_argument("--once", action="store_true", help="render once and exit")
    parser.add_argument("--max-stale", type=_seconds, default=DEFAULT_MAX_STALE,
                        help="accept an answer from a server that heard from the Raft leader at "
                             "most this long ago; 0 = leader only (default %(default)ss)")
    parser.add_argument("--recovery-grace", type=float, default=DEFAULT_RECOVERY_GRACE,
                        help="seconds to keep routing to instances Consul forgot after an outage "
                             "or a state loss, while they register again (default %(default)s)")
    parser.add_argument("--nginx-bin", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--nginx-prefix", help="nginx -p DIR: test with nginx -t, reload with -s reload")
    parser.add_argument("--nginx-conf", help="nginx -c CONF (default DIR/nginx.conf)")
    parser.add_argument("--check-cmd", help="shell command testing the config (replaces nginx -t)")
    parser.add_argument("--reload-cmd", help="shell command reloading nginx (replaces -s reload)")
    parser.add_argument("--no-reload", action="store_true",
                        help="write and test only (before nginx is started)")
    parser.add_argument("--log-level", default=os.environ.get("NER_LOG_LEVEL", "INFO"))
    return parser


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("urllib3").setLevel(logging.WARNING)  # one line per long poll is noise


def startup_message() -> str:
    found = shutil.which("consul-template")
    return STARTUP_MESSAGE if not found else f"renderer: project renderer (consul-template at {found} not used)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        template = Template.parse(args.template.read_text(encoding="utf-8"))
        service = args.service or template.service_name()
    except (OSError, TemplateError) as exc:
        log.error("cannot use template", extra={"fields": {"template": str(args.template), "error": str(exc)}})
        return 2
    wait_min, wait_max = args.wait
    log.info(startup_message(), extra={"fields": {
        "consul": args.consul, "service": service, "template": str(args.template), "out": str(args.out),
        "wait": f"{wait_min}s:{wait_max}s", "hold_down_s": args.hold_down, "once": args.once}})
    renderer = Renderer(template, service, Consul(args.consul, os.environ.get("CONSUL_HTTP_TOKEN", ""), args.max_stale),
                        args.out, nginx_control(args), args.wait, args.recovery_grace, args.hold_down)
    renderer.install_signal_handlers()
    try:
        return renderer.run_once() if args.once else renderer.run_forever()
    except Shutdown:
        return 0
    finally:
        log.info("renderer stopped")


if __name__ == "__main__":
    sys.exit(main())
