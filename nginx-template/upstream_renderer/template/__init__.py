"""The Go-template subset upstream.ctmpl uses: lexer, parser and executor, as consul-template's template/ runs it."""

from upstream_renderer.template.errors import TemplateError
from upstream_renderer.template.executor import Template, render, render_parsed

__all__ = ["Template", "TemplateError", "render", "render_parsed"]
