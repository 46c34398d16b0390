"""What a person reads on a page: the text of its HTML without tags, `<wbr>` or entities.

Pages wrap long subjects and URLs at their separators (`<wbr>`, the `breakable` filter), so
tests look for what is shown in the visible text rather than in the markup.
"""

from __future__ import annotations

import html
import re

from django.http import HttpResponse

_INVISIBLE = re.compile(r"<(script|style|title)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
_WBR = re.compile(r"<wbr\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def visible_text(page: HttpResponse | str) -> str:
    """The page's text as shown, with runs of white space as one space."""
    markup = page if isinstance(page, str) else page.content.decode()
    markup = _WBR.sub("", _INVISIBLE.sub(" ", markup))
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", markup))).strip()
