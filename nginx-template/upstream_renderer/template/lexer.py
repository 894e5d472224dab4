"""Go's text/template lexing for the subset: text and actions, trim markers, comments, tokens."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Union

from upstream_renderer.template.errors import TemplateError

TRIM_CHARS = " \t\r\n"  # what Go's text/template trims next to {{- and -}}
TOKEN_RE = re.compile(
    r"""
    (?P<space>\s*)(?:
      (?P<declare>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*)
    | (?P<field>(?:\.[A-Za-z_]\w*)+)
    | (?P<dot>\.)
    | (?P<number>-?\d+)
    | (?P<word>[A-Za-z_]\w*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<other>\S+)
    )""",
    re.VERBOSE,
)

Token = tuple[str, str]  # (kind, source text): kind is a group name of TOKEN_RE (field, var, word, string, ...)


@dataclass
class Action:
    """One {{ ... }} with its source line, after trim markers have been applied."""

    tokens: list[Token]
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
        if (
            source[inner_start : inner_start + 1] == "-"
            and source[inner_start + 1 : inner_start + 2] != ""
            and source[inner_start + 1] in TRIM_CHARS
        ):
            text = text.rstrip(TRIM_CHARS)  # "{{- " trims the white space before the action
            inner_start += 2
        parts.append(text)
        inner, pos, is_comment = _action_body(source, inner_start, line)
        trim_next = len(inner) >= 2 and inner[-1] == "-" and inner[-2] in TRIM_CHARS
        if trim_next:
            inner = inner[:-2]  # " -}}" trims the white space after the action
        if not is_comment:
            parts.append(Action(tokens=tokenize(inner, line), line=line))


def _action_body(source: str, start: int, line: int) -> tuple[str, int, bool]:
    """The text inside one action, the index past its closing braces, and if it is a comment."""
    if source.startswith("/*", start):  # Go: a comment starts right after "{{" or "{{- "
        close = source.find("*/", start + 2)
        if close < 0:
            raise TemplateError(f"line {line}: unclosed comment")
        after = close + 2
        for tail in ("}}", " -}}", "\t-}}", "\r-}}", "\n-}}"):
            if source.startswith(tail, after):
                return source[start : after + len(tail) - 2], after + len(tail), True
        raise TemplateError(f"line {line}: comment ends before closing delimiter")
    i = start
    while i < len(source):
        char = source[i]
        if char in '"`':
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


def tokenize(inner: str, line: int) -> list[Token]:
    """Tokens of one action; anything outside the subset is reported with its line."""
    tokens: list[Token] = []
    for match in TOKEN_RE.finditer(inner):
        kind = next((name for name, value in match.groupdict().items() if value is not None and name != "space"), None)
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "other":
            raise TemplateError(
                f"line {line}: unsupported syntax {value!r} in {{{{{inner}}}}}; "
                "supported: range, if, with, else, end, variables, pipes, .Field, strings, numbers"
            )
        if kind == "field" and tokens and tokens[-1][0] == "rparen" and not match.group("space"):
            raise TemplateError(f"line {line}: a field after ( ) is not supported; bind the value with `with`")
        tokens.append((kind, value))
    if not tokens:
        raise TemplateError(f"line {line}: empty action")
    return tokens


def string_value(kind: str, value: str) -> str:
    """The value of a Go string token."""
    if kind == "raw":
        return value[1:-1]
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"unsupported escape in string {value}") from exc
