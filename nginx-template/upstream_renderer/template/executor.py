"""Executing a parsed template against Consul's instances and keys, with Go's rules for scope, fields and range."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Union

from upstream_renderer.dependency import INSTANCE_FIELDS, Instance, ServiceQuery
from upstream_renderer.template.errors import TemplateError
from upstream_renderer.template.functions import FUNCTIONS, Context, display, truth
from upstream_renderer.template.lexer import split_actions
from upstream_renderer.template.parser import (
    Block,
    Dot,
    Field,
    Function,
    Literal,
    Operand,
    Output,
    Parser,
    Pipeline,
    Text,
    Variable,
)

Lookup = Callable[[ServiceQuery], list[Instance]]
_NO_FINAL = object()  # no value piped in from the previous command


@dataclass
class Template:
    """A parsed upstream template."""

    nodes: list

    @classmethod
    def parse(cls, source: str) -> "Template":
        return cls(Parser(split_actions(source)).parse())

    def functions(self) -> list[Function]:
        """Every function call in the template, in source order."""
        found: list[Function] = []

        def pipeline(pipe: Pipeline) -> None:
            for command in pipe.commands:
                for operand in command:
                    if isinstance(operand, Function):
                        found.append(operand)
                    elif isinstance(operand, Pipeline):
                        pipeline(operand)

        def walk(nodes: list) -> None:
            for node in nodes:
                if isinstance(node, Output):
                    pipeline(node.pipeline)
                elif isinstance(node, Block):
                    pipeline(node.pipeline)
                    walk(node.body)
                    walk(node.otherwise)

        walk(self.nodes)
        return found

    def queries(self) -> list[ServiceQuery]:
        """Every service query in the template, in source order."""
        return [f.query for f in self.functions() if f.query is not None]

    def uses_keys(self) -> bool:
        """Whether the template reads Consul's KV store (key, keyOrDefault)."""
        return any(f.name in ("key", "keyOrDefault") for f in self.functions())

    def service_name(self) -> str:
        """The one Consul service this template renders (the renderer watches one service)."""
        names = {q.name for q in self.queries()}
        if len(names) != 1:
            raise TemplateError(f"template must query exactly one service, found {sorted(names)}")
        return names.pop()

    def execute(self, lookup: Lookup, keys: Mapping[str, str] | None = None) -> str:
        """Render with lookup(query) giving the already filtered, ordered instances, and the KV keys read."""
        out: list[str] = []
        _Run(Context(lookup, keys), out).nodes(self.nodes, None, [{"$": None}])
        return "".join(out)


Scopes = list[dict[str, Any]]


class _Run:
    """One execution: the output so far and the functions' context."""

    def __init__(self, ctx: Context, out: list[str]):
        self.ctx = ctx
        self.out = out

    def nodes(self, nodes: list, dot: Any, scopes: Scopes) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Output):
                value = self.pipeline(node.pipeline, dot, scopes)
                if not node.pipeline.variables:  # a declaration or an assignment prints nothing
                    self.out.append(display(value))
            else:
                self.block(node, dot, scopes)

    def block(self, node: Block, dot: Any, scopes: Scopes) -> None:
        inner = [*scopes, {}]  # variables declared here live until the block's end
        pipe = node.pipeline
        value = self.evaluate(pipe, dot, inner)
        if node.kind == "range":
            items = _range_items(value, pipe.line)
            for key, item in items:
                scope: Scopes = [*inner, {}]
                if len(pipe.variables) == 1:
                    scope[-1][pipe.variables[0]] = item
                elif len(pipe.variables) == 2:
                    scope[-1][pipe.variables[0]], scope[-1][pipe.variables[1]] = key, item
                self.nodes(node.body, item, scope)
            if not items:
                self.nodes(node.otherwise, dot, inner)
            return
        if len(pipe.variables) == 1:
            inner[-1][pipe.variables[0]] = value
        if truth(value):
            self.nodes(node.body, value if node.kind == "with" else dot, inner)
        else:
            self.nodes(node.otherwise, dot, inner)

    def pipeline(self, pipe: Pipeline, dot: Any, scopes: Scopes) -> Any:
        """Evaluate, then declare (:=) or assign (=) its variable."""
        value = self.evaluate(pipe, dot, scopes)
        if pipe.variables:
            name = pipe.variables[0]
            if pipe.assign:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise TemplateError(f"line {pipe.line}: undefined variable {name}")
            else:
                scopes[-1][name] = value
        return value

    def evaluate(self, pipe: Pipeline, dot: Any, scopes: Scopes) -> Any:
        value: Any = _NO_FINAL
        for command in pipe.commands:
            value = self.command(command, dot, scopes, value, pipe.line)
        return value

    def command(self, command: list[Operand], dot: Any, scopes: Scopes, final: Any, line: int) -> Any:
        head = command[0]
        if isinstance(head, Function):
            args = [self.operand(arg, dot, scopes, line) for arg in command[1:]]
            if head.query is not None:
                args = [head.query]
            if final is not _NO_FINAL:
                args.append(final)
            try:
                return FUNCTIONS[head.name](self.ctx, line, *args)
            except TypeError as exc:
                raise TemplateError(f"line {line}: wrong arguments for {head.name}: {exc}") from None
        if final is not _NO_FINAL:
            raise TemplateError(f"line {line}: can't give an argument to a non-function")
        return self.operand(head, dot, scopes, line)

    def operand(self, operand: Operand, dot: Any, scopes: Scopes, line: int) -> Any:
        if isinstance(operand, Literal):
            return operand.value
        if isinstance(operand, Dot):
            return dot
        if isinstance(operand, Pipeline):
            return self.evaluate(operand, dot, scopes)
        if isinstance(operand, Field):
            if dot is None:
                raise TemplateError(f"line {operand.line}: .{'.'.join(operand.names)} used outside range or with")
            return _fields(dot, operand.names, operand.line)
        if isinstance(operand, Variable):
            for scope in reversed(scopes):
                if operand.name in scope:
                    return _fields(scope[operand.name], operand.names, operand.line)
            raise TemplateError(f"line {operand.line}: undefined variable {operand.name}")
        raise TemplateError(f"line {line}: {operand.name} is a function and takes no part here")


def _fields(value: Any, names: tuple[str, ...], line: int) -> Any:
    """Field access: an Instance's exported fields; a map's keys (a missing one is an error, as with
    consul-template's error_on_missing_key)."""
    for name in names:
        if isinstance(value, Instance):
            if name not in INSTANCE_FIELDS:
                raise TemplateError(
                    f"line {line}: unsupported field .{name} (supported: {', '.join(sorted(INSTANCE_FIELDS))})"
                )
            value = getattr(value, INSTANCE_FIELDS[name])
        elif isinstance(value, Mapping):
            if name not in value:
                raise TemplateError(f"line {line}: map has no entry for key {name!r}")
            value = value[name]
        else:
            raise TemplateError(f"line {line}: can't evaluate field {name} in type {type(value).__name__}")
    return value


def _range_items(value: Any, line: int) -> list[tuple[Any, Any]]:
    """(key, element) pairs: a list by position, a map in sorted key order, as Go ranges them."""
    if isinstance(value, list):
        return list(enumerate(value))
    if isinstance(value, Mapping):
        return [(key, value[key]) for key in sorted(value)]
    if value is None:
        return []
    raise TemplateError(f"line {line}: range can't iterate over {type(value).__name__}")


def render(
    template_text: str,
    instances: Iterable[Union[Instance, Mapping[str, Any]]],
    service: str | None = None,
    keys: Mapping[str, str] | None = None,
) -> str:
    """Render the upstream template for these instances (Instance or raw Consul health entries) and KV keys.

    Pass all instances of the service: the template's status filter and the
    node/ID ordering are applied here. `service` renames the template's service.
    """
    template = Template.parse(template_text)
    return render_parsed(template, [as_instance(i) for i in instances], service, keys)


def render_parsed(
    template: Template, instances: list[Instance], service: str | None = None, keys: Mapping[str, str] | None = None
) -> str:
    """render() for an already parsed template."""
    return template.execute(lambda query: query.select(instances, service), keys)


def as_instance(item: Union[Instance, Mapping[str, Any]]) -> Instance:
    return item if isinstance(item, Instance) else Instance.from_health_entry(item)
