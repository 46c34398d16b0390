"""`{{ code|explain_reason }}`: the one-line meaning of an exchange reason code."""

from __future__ import annotations

from django import template

from tokens.reasons import explain

register = template.Library()


@register.filter
def explain_reason(reason: object) -> str:
    return explain(str(reason))
