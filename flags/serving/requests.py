"""Reading a serving request, shared by resolve and OFREP: the JSON body, the evaluation context
(size-limited, unit attributes checked) and `If-None-Match` against an ETag.

Hand-parsed rather than by DRF's parsers: a context is arbitrary JSON, and no context (deeply
nested, huge, lone surrogates) may turn into a 500. The errors are plain exceptions; each
protocol maps them to its own error shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from flags.snapshots import ServedFlag
from flagstaff.engine.constraints import lookup

TARGETING_KEY = "targetingKey"


class BodyError(ValueError):
    """The body is not JSON, or not a JSON object."""


class ContextError(ValueError):
    def __init__(self, message: str, *, path: str = "context", too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.too_large = too_large


def read_body(request: HttpRequest | Request) -> tuple[dict[str, Any], int]:
    """The JSON object of the body and its size in bytes (an empty body is `{}`)."""
    raw = request.body
    if not raw.strip():
        return {}, 0
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and integers beyond Python's digit limit;
        # RecursionError, nesting deeper than the parser goes.
        raise BodyError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BodyError("The body must be a JSON object.")
    return data, len(raw)


def read_context(data: Mapping[str, Any], body_size: int) -> dict[str, Any]:
    context = data.get("context")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise ContextError("The context must be a JSON object.")
    limit = settings.FLAGSTAFF_MAX_CONTEXT_BYTES
    if body_size > limit:
        size = context_size(context, limit)
        if size > limit:
            raise ContextError(f"The context is {size:,} bytes; the limit is {limit:,}.", too_large=True)
    return context


def context_size(context: Mapping[str, Any], limit: int) -> int:
    """The context's size in bytes as compact UTF-8 JSON; above `limit` when too deep to measure.

    surrogatepass: a lone surrogate is measured, not refused; the engine decides about it."""
    try:
        return len(json.dumps(context, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except RecursionError:
        return limit + 1


def check_units(context: Mapping[str, Any], flags: Iterable[ServedFlag]) -> None:
    """`targetingKey` and each flag's stickiness attribute, when given, must be strings."""
    names = {TARGETING_KEY} | {flag.stickiness for flag in flags if flag.stickiness}
    for name in sorted(names):
        value = lookup(context, name)
        if value is not None and not isinstance(value, str):
            raise ContextError(
                f"'{name}' identifies the unit and must be a string, not {_json_type(value)}.",
                path=f"context.{name}",
            )


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [part.strip() for part in header.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)
