"""The one error family services raise, and the one handler that turns errors into JSON.

Every API error body is `{"code": ..., "detail": ...}`, plus `errors: [{path, message}]` for
validation problems.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

# A 503 is an answer to retry: expected while something is down or full, and it comes in bursts
# (a database outage, every stream client of a restarted process reconnecting). Each code is
# logged once per this many seconds with its count, by the raising module's logger, instead of
# django.request's error line per response.
REFUSAL_LOG_SECONDS = 10.0

_refusals_lock = threading.Lock()
_refusals: dict[str, tuple[int, float]] = {}  # code -> (refusals not yet logged, last logged at)


class DomainError(Exception):
    """A request the domain refuses. Subclasses fix the HTTP status and a stable code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.errors = list(errors)
        self.extra = dict(extra or {})

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class InvalidInput(DomainError):
    code = "invalid"


class NotFound(DomainError, Http404):
    """Also an Http404, so HTML views that use the same lookups render the 404 page."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Forbidden(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class PreconditionFailed(DomainError):
    """The caller acted on a state that has changed since it read it (If-Match)."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    code = "precondition_failed"


class TooLarge(DomainError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class Unavailable(DomainError):
    """Something this answer needs (the database, a cache) cannot be reached right now."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "unavailable"


def flatten_serializer_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error structure into `[{path, message}]` with dotted/indexed paths."""
    if isinstance(detail, Mapping):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            if key == "non_field_errors":
                out.extend(flatten_serializer_errors(value, prefix))
            else:
                out.extend(flatten_serializer_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"path": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            if item:
                out.extend(flatten_serializer_errors(item, f"{prefix}[{index}]"))
        return out
    return [{"path": prefix, "message": str(detail)}]


_API_EXCEPTION_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _log_refusal(exc: DomainError) -> None:
    """Count a 503 of `exc`'s code; log the count at most once per REFUSAL_LOG_SECONDS."""
    now = time.monotonic()
    with _refusals_lock:
        pending, logged_at = _refusals.get(exc.code, (0, float("-inf")))
        if now - logged_at < REFUSAL_LOG_SECONDS:
            _refusals[exc.code] = (pending + 1, logged_at)
            return
        _refusals[exc.code] = (0, now)
    logging.getLogger(type(exc).__module__).warning(
        "%d refused (503 %s) in the last %g s: %s", pending + 1, exc.code, REFUSAL_LOG_SECONDS, exc.detail
    )


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        answer = Response(exc.as_dict(), status=exc.status_code)
        if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
            _log_refusal(exc)
            answer._has_been_logged = True  # type: ignore[attr-defined]  # logged above, throttled
        return answer
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"code": "too_large", "detail": "The request body is larger than this server accepts."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_serializer_errors(exc.detail)
        return Response(
            {"code": "invalid", "detail": "The request is not valid.", "errors": errors},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, dict(context))
    if response is None:
        return None
    code = next((c for cls, c in _API_EXCEPTION_CODES.items() if isinstance(exc, cls)), "error")
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    response.data = {"code": code, "detail": str(detail)}
    return response
