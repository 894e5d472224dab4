"""Executing a parsed template against Consul's instances, with Go's rules for fields and eq."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Union

from upstream_renderer.dependency import INSTANCE_FIELDS, Instance, ServiceQuery
from upstream_renderer.template.errors import TemplateError
from upstream_renderer.template.lexer import split_actions
from upstream_renderer.template.parser import Eq, If, Literal, Operand, Parser, Range, Text

Lookup = Callable[[ServiceQuery], list[Instance]]


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

    def execute(self, lookup: Lookup) -> str:
        """Render with lookup(query) giving the already filtered, ordered instances."""
        out: list[str] = []
        _run(self.nodes, None, lookup, out)
        return "".join(out)


def _run(nodes: list, dot: Instance | None, lookup: Lookup, out: list[str]) -> None:
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


def _value(operand: Operand, dot: Instance | None) -> Any:
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


def render(
    template_text: str, instances: Iterable[Union[Instance, Mapping[str, Any]]], service: str | None = None
) -> str:
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
