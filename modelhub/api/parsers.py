"""Request body parsers of the DRF endpoints (the management API and the JWT views)."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with nesting too deep for Python's parser answered as a 400.

    ``json.load`` recurses once per nested array or object; a body of a few thousand
    ``[`` raises ``RecursionError``, which is no ``ValueError`` and would surface as a
    500. No body of this API nests more than a handful of levels.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
