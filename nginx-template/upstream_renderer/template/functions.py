"""The template functions the renderer implements, with consul-template's and Go's semantics.

service, byMeta, key, keyOrDefault (consul-template's template/funcs.go); printf, index, eq, ne,
not, len (Go's text/template builtins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from upstream_renderer.dependency import Instance, ServiceQuery
from upstream_renderer.template.errors import TemplateError

_BY_META_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_PRINTF_VERB = re.compile(r"%([%sdv])")


class MissingKey(TemplateError):
    """`key` of a key Consul does not hold: consul-template waits for it instead of rendering."""


@dataclass(frozen=True)
class Context:
    """What functions read: the service's instances, and the KV keys (None: no KV was read)."""

    lookup: Callable[[ServiceQuery], list[Instance]]
    keys: Mapping[str, str] | None = None


def _service(ctx: Context, line: int, query: ServiceQuery) -> list[Instance]:
    return ctx.lookup(query)


def by_meta(meta: str, services: list[Instance]) -> dict[str, list[Instance]]:
    """Services grouped by the values of meta keys, joined by "_" and reduced to [a-zA-Z0-9_-]."""
    groups: dict[str, list[Instance]] = {}
    for service in services:
        parts = []
        for name in meta.split(","):
            real = name.removesuffix("|int")
            value = service.meta.get(real, "")
            if name.endswith("|int"):
                try:
                    value = f"{int(value or '0'):05d}"
                except ValueError:
                    raise TemplateError(f"byMeta: cannot parse {value!r} as number") from None
            elif not value:
                value = f"_no_{real}_"
            parts.append(_BY_META_UNSAFE.sub("_", value))
        groups.setdefault("_".join(parts), []).append(service)
    return groups


def _key(ctx: Context, line: int, key: str) -> str:
    value = (ctx.keys or {}).get(key)
    if value is None:
        raise MissingKey(f"line {line}: key {key!r} is not in Consul; consul-template waits for it")
    return value


def _key_or_default(ctx: Context, line: int, key: str, default: str) -> str:
    """An absent or empty key gives the default, as consul-template's keyOrDefault."""
    return (ctx.keys or {}).get(key) or default


def printf(line: int, layout: str, *args: Any) -> str:
    """Go's fmt.Sprintf for %s, %d, %v and %%."""
    values = list(args)

    def verb(match: re.Match) -> str:
        if match.group(1) == "%":
            return "%"
        if not values:
            return f"%!{match.group(1)}(MISSING)"
        value = values.pop(0)
        if match.group(1) == "d" and not isinstance(value, int):
            raise TemplateError(f"line {line}: printf %d of a non-integer {value!r}")
        return display(value)

    out = _PRINTF_VERB.sub(verb, layout)
    if values:
        raise TemplateError(f"line {line}: printf: {len(values)} argument(s) left over")
    return out


def index(line: int, item: Any, *keys: Any) -> Any:
    """Go's index: a list by position, a map by key (absent key: the zero value, "" for a string map)."""
    for key in keys:
        if isinstance(item, list):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise TemplateError(f"line {line}: index out of range: {key!r}")
            item = item[key]
        elif isinstance(item, dict):
            strings = all(isinstance(v, str) for v in item.values())
            item = item.get(key, "" if strings else None)
        else:
            raise TemplateError(f"line {line}: can't index item of type {type(item).__name__}")
    return item


def equal(line: int, left: Any, *others: Any) -> bool:
    """Go's eq: true when left equals any other; comparing different basic kinds is an error."""
    if not others:
        raise TemplateError(f"line {line}: eq: missing argument for comparison")
    for right in others:
        if type(left) is not type(right):
            raise TemplateError(f"line {line}: eq: incompatible types for comparison")
        if left == right:
            return True
    return False


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    return value is not None and value is not False and value != 0 and value != "" and value != [] and value != {}


def display(value: Any) -> str:
    """How Go prints a value into the output."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    if value is None:
        return "<no value>"
    raise TemplateError(f"printing a {type(value).__name__} is not supported")


# name -> (needs the context, implementation taking (ctx or line, line?, *args))
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "service": lambda ctx, line, query: _service(ctx, line, query),
    "byMeta": lambda ctx, line, meta, services: by_meta(meta, services),
    "key": _key,
    "keyOrDefault": _key_or_default,
    "printf": lambda ctx, line, layout, *args: printf(line, layout, *args),
    "index": lambda ctx, line, item, *keys: index(line, item, *keys),
    "eq": lambda ctx, line, left, *others: equal(line, left, *others),
    "ne": lambda ctx, line, left, right: not equal(line, left, right),
    "not": lambda ctx, line, value: not truth(value),
    "len": lambda ctx, line, value: len(value),
}
