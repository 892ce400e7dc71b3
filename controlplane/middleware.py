"""Request checks every page and API shares, run once before any view reads the request."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBadRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string

# C0 and C1 control characters (Unicode category Cc): no filter, key or ticket contains one, and
# PostgreSQL refuses NUL in any text, which turned such a filter into a 500 in whichever view
# passed it on to a query.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
JSON_PATH_PREFIXES = ("/api/", "/ofrep/")


def _shown(name: str) -> str:
    """The parameter's name with its control characters escaped, to name it in the answer."""
    return CONTROL_CHARACTER.sub(lambda match: f"\\x{ord(match.group()):02x}", name)


class QueryControlCharacterMiddleware:
    """Refuse a query parameter whose name or value holds a control character, with a 400 that
    names it: JSON under /api/ and /ofrep/, a plain page elsewhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.process_request(request) or self.get_response(request)

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        for name, values in request.GET.lists():
            if CONTROL_CHARACTER.search(name) or any(CONTROL_CHARACTER.search(value) for value in values):
                return _refusal(request, _shown(name))
        return None


def _refusal(request: HttpRequest, name: str) -> HttpResponseBase:
    message = "Must not contain control characters."
    detail = f"The query parameter '{name}' contains a control character."
    if request.path.startswith(JSON_PATH_PREFIXES):
        return JsonResponse(
            {
                "code": "invalid_query_parameter",
                "detail": detail,
                "errors": [{"path": name, "message": message}],
            },
            status=400,
        )
    # Standalone, like the 500 page: the session and roles have not been read at this point.
    return HttpResponseBadRequest(render_to_string("400.html", {"detail": detail}))
