"""Template filters shared by every page."""

from __future__ import annotations

import re

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_SEPARATORS = re.compile(r"([/:@.,=&?|])")


@register.filter
def breakable(value: object) -> SafeString:
    """Escape `value` and allow line breaks after `/`, `:` and similar separators, so long
    subjects, URLs and codes wrap between their parts rather than in the middle of a word."""
    parts = _SEPARATORS.split(str(value))
    # split() with a group alternates text and separator: every odd part is a separator.
    html = "".join(
        str(conditional_escape(part)) + ("<wbr>" if index % 2 else "")
        for index, part in enumerate(parts)
    )
    return mark_safe(html)  # noqa: S308 (every part is escaped)
