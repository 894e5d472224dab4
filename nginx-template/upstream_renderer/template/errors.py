"""The one error the template interpreter raises."""

from __future__ import annotations


class TemplateError(ValueError):
    """The template uses something this interpreter does not implement, or misuses it."""
