"""Content negotiation for views that always answer one way."""

from __future__ import annotations

from typing import Any

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request


class FirstRenderer(BaseContentNegotiation):
    """The view's first renderer and parser, whatever Accept and Content-Type say.

    For the audit export (CSV or JSON Lines as `format` asks, which default negotiation would
    refuse with 406 for `Accept: text/csv`) and the serving paths, which answer JSON only and
    should not spend a parse of the Accept header on every call.
    """

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0]

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type
