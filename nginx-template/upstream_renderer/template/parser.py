"""The node tree of a template as Go's parse package builds it: text, actions, pipelines, range/if/with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from upstream_renderer.dependency import InvalidQuery, ServiceQuery
from upstream_renderer.template.errors import TemplateError
from upstream_renderer.template.functions import FUNCTIONS
from upstream_renderer.template.lexer import Action, Token, string_value


@dataclass
class Text:
    text: str


@dataclass
class Field:
    """.A.B: fields of dot."""

    names: tuple[str, ...]
    line: int


@dataclass
class Variable:
    """$x.A.B: a variable and fields of it ("$" alone is the data the template runs with)."""

    name: str
    names: tuple[str, ...]
    line: int


@dataclass
class Dot:
    line: int


@dataclass
class Literal:
    value: Union[str, int]


@dataclass
class Function:
    name: str
    line: int
    query: ServiceQuery | None = None  # `service "..."`: its query, parsed once


@dataclass
class Pipeline:
    """cmd | cmd ...; with a declaration ($x := / $k, $v :=) or an assignment ($x =)."""

    commands: list[list["Operand"]]
    line: int
    variables: tuple[str, ...] = ()
    assign: bool = False


Operand = Union[Field, Variable, Dot, Literal, Function, Pipeline]


@dataclass
class Output:
    pipeline: Pipeline


@dataclass
class Block:
    """range, if or with: a pipeline, the body, and the else branch."""

    kind: str
    pipeline: Pipeline
    body: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


BLOCKS = ("range", "if", "with")


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
            if keyword in (("word", "end"), ("word", "else")):
                if inside is None:
                    raise TemplateError(f"line {part.line}: {{{{{keyword[1]}}}}} without range/if/with")
                if len(part.tokens) != 1:
                    raise TemplateError(
                        f"line {part.line}: unsupported '{keyword[1]} ...' (no 'else if' / 'else with')"
                    )
                return nodes, part
            nodes.append(self._action(part))
        if inside is not None:
            raise TemplateError(f"missing {{{{end}}}} for {inside}")
        return nodes, None

    def _action(self, action: Action) -> Union[Block, Output]:
        kind, value = action.tokens[0]
        if kind != "word" or value not in BLOCKS:
            return Output(Tokens(action.tokens, action.line).pipeline(declarations=True))
        pipeline = Tokens(action.tokens[1:], action.line).pipeline(declarations=True, pair=value == "range")
        if pipeline.assign:
            raise TemplateError(f"line {action.line}: {value} takes a declaration (:=), not an assignment")
        node = Block(value, pipeline)
        node.body, stop = self._nodes(inside=value)
        if stop.tokens[0][1] == "else":
            node.otherwise, stop = self._nodes(inside=value)
            if stop.tokens[0][1] != "end":
                raise TemplateError(f"line {stop.line}: second {{{{else}}}} in one {value}")
        return node


class Tokens:
    """A cursor over one action's tokens, parsing Go's pipeline grammar."""

    def __init__(self, tokens: list[Token], line: int):
        self.tokens = tokens
        self.line = line
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise TemplateError(f"line {self.line}: unexpected end of action")
        self.pos += 1
        return token

    def pipeline(self, declarations: bool = False, pair: bool = False, nested: bool = False) -> Pipeline:
        variables, assign = self._declaration(pair) if declarations else ((), False)
        commands: list[list[Operand]] = []
        command: list[Operand] = []
        while (token := self.peek()) is not None:
            kind = token[0]
            if kind == "rparen" and nested:
                break
            self.pos += 1
            if kind == "pipe":
                if not command:
                    raise TemplateError(f"line {self.line}: missing command before |")
                commands.append(command)
                command = []
            elif kind == "lparen":
                command.append(self.pipeline(nested=True))
                if self.take()[0] != "rparen":
                    raise TemplateError(f"line {self.line}: unclosed (")
            else:
                command.append(self._operand(token))
        if not command:
            raise TemplateError(f"line {self.line}: missing value in action")
        commands.append(command)
        for cmd in commands:
            _check_command(cmd, self.line)
        return Pipeline(commands, self.line, variables, assign)

    def _declaration(self, pair: bool) -> tuple[tuple[str, ...], bool]:
        """`$x :=`, `$x =`, or in range `$k, $v :=`; nothing when the action starts otherwise."""
        tokens = self.tokens[self.pos :]
        if len(tokens) >= 2 and tokens[0][0] == "var" and tokens[1][0] in ("declare", "assign"):
            self.pos += 2
            return (tokens[0][1],), tokens[1][0] == "assign"
        if (
            pair
            and len(tokens) >= 4
            and tokens[0][0] == "var"
            and tokens[1][0] == "comma"
            and tokens[2][0] == "var"
            and tokens[3][0] == "declare"
        ):
            self.pos += 4
            return (tokens[0][1], tokens[2][1]), False
        return (), False

    def _operand(self, token: Token) -> Operand:
        kind, value = token
        if kind == "field":
            return Field(tuple(value[1:].split(".")), self.line)
        if kind == "var":
            name, *names = value.split(".")
            return Variable(name, tuple(names), self.line)
        if kind == "dot":
            return Dot(self.line)
        if kind in ("string", "raw"):
            return Literal(string_value(kind, value))
        if kind == "number":
            return Literal(int(value))
        if kind == "word":
            if value not in FUNCTIONS:
                raise TemplateError(
                    f"line {self.line}: function {value!r} not defined (supported: {', '.join(sorted(FUNCTIONS))})"
                )
            return Function(value, self.line)
        raise TemplateError(f"line {self.line}: unexpected {value!r}")


def _check_command(command: list[Operand], line: int) -> None:
    """Arguments only follow a function; `service` takes one literal query, parsed now."""
    head = command[0]
    if not isinstance(head, Function):
        if len(command) > 1:
            raise TemplateError(f"line {line}: can't give an argument to a non-function")
        return
    if head.name == "service":
        if len(command) != 2 or not isinstance(command[1], Literal) or not isinstance(command[1].value, str):
            raise TemplateError(f"line {line}: only 'service \"name|filters\"' with a literal query is supported")
        try:
            head.query = ServiceQuery.parse(command[1].value)
        except InvalidQuery as exc:
            raise TemplateError(f"line {line}: {exc}") from exc
