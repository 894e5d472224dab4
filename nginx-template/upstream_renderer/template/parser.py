"""The node tree of a template: text, fields, literals, `range service`, `if eq`, as Go's parse package builds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from upstream_renderer.dependency import INSTANCE_FIELDS, InvalidQuery, ServiceQuery
from upstream_renderer.template.errors import TemplateError
from upstream_renderer.template.lexer import Action, Token, string_value


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


Operand = Union[Field, Literal]


@dataclass
class Eq:
    left: Operand
    right: Operand
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
                    raise TemplateError(
                        f"line {part.line}: unsupported '{keyword[1]} ...' (no 'else if' / 'else with')"
                    )
                return nodes, part
            nodes.append(self._action(part))
        if inside is not None:
            raise TemplateError(f"missing {{{{end}}}} for {inside}")
        return nodes, None

    def _action(self, action: Action) -> Union[Range, If, Field, Literal]:
        kind, value = action.tokens[0]
        node: Union[Range, If]
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
            raise TemplateError(
                f"line {action.line}: only 'range service \"name|filters\"' is "
                "supported (no variables, pipes or other functions)"
            )
        try:
            return ServiceQuery.parse(string_value(*tokens[2]))
        except InvalidQuery as exc:
            raise TemplateError(f"line {action.line}: {exc}") from exc

    @staticmethod
    def _condition(action: Action) -> Eq:
        tokens = action.tokens
        if len(tokens) != 4 or tokens[1] != ("word", "eq"):
            raise TemplateError(f"line {action.line}: only 'if eq A B' is supported")
        return Eq(operand(tokens[2], action.line), operand(tokens[3], action.line), action.line)

    @staticmethod
    def _output(action: Action) -> Operand:
        if len(action.tokens) != 1:
            raise TemplateError(f"line {action.line}: unsupported action {' '.join(v for _, v in action.tokens)!r}")
        return operand(action.tokens[0], action.line)


def operand(token: Token, line: int) -> Operand:
    """A .Field or a string literal; functions and keywords are not values here."""
    kind, value = token
    if kind == "field":
        if value[1:] not in INSTANCE_FIELDS:
            raise TemplateError(
                f"line {line}: unsupported field {value} (supported: {', '.join(sorted(INSTANCE_FIELDS))})"
            )
        return Field(value[1:], line)
    if kind in ("string", "raw"):
        return Literal(string_value(kind, value))
    raise TemplateError(
        f"line {line}: unsupported {value!r} (functions other than 'service' and 'eq' are not implemented)"
    )
