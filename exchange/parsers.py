"""The token endpoint's strict body reader (`exchange.request.read_body`) as DRF parsers.

The pipeline reads the body itself, so that a refused request is recorded with what could be
read of it; these parsers say which content types the endpoint accepts (and give `request.data`
the same fields, should anything read it).
"""

from __future__ import annotations

from typing import Any

from rest_framework.parsers import BaseParser

from exchange.request import read_body


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return dict(read_body(stream.read(), self.media_type).fields)


class StrictFormParser(StrictJSONParser):
    media_type = "application/x-www-form-urlencoded"
