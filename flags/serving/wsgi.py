"""The serving fast path, in front of Django: `POST /api/v1/resolve`, OFREP single and telemetry
ingest answered without Django's middleware stack and URL resolver when they can be answered at
once.

Resolve and OFREP are what services call on every request. On the hot path the answer itself
(a remembered token, the snapshot, the engine, an answer encoded once per outcome) costs a
fraction of what Django's handler around it does (request and response objects through nine
middleware, URL resolution, signals); bench/bench_resolve_http.py shows the figures. This WSGI
wrapper answers such requests from the
views' own hot paths (`ResolveView.quick`, `EvaluateFlagView.quick`) and applies the response
side of the project's middleware that acts on such an answer, so the bytes are those Django
would send. Anything else goes to Django unchanged: another path or method, a cookie (session
and CSRF middleware could act), a body without Content-Length or over the context limit, a
host Django would refuse, a request the quick path declines (errors are worded by DRF).

Other apps' hot paths ride it too, named by the composition root (`more`, in
controlplane/wsgi.py): telemetry ingest (`CallsView.quick`), with its own body limit.

It only runs with the middleware list it was written for (`KNOWN_MIDDLEWARE`); with any other
list every request goes to Django, as if the wrapper were not there. Requests it answers do
not send Django's request_started / request_finished signals (it closes obsolete database
connections itself, which is what their receivers do for such a request).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest, get_script_name
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix

from controlplane.middleware import QueryControlCharacterMiddleware
from controlplane.security import ContentSecurityPolicyMiddleware
from flags.serving.ofrep import EvaluateFlagView
from flags.serving.resolve import ResolveView

StartResponse = Callable[..., Any]
WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# A view's hot path: its answer, or None for Django to answer.
QuickView = Callable[[HttpRequest], HttpResponse | None]
# More hot paths: per path, the view's hot path and the largest body it reads.
MorePaths = Mapping[str, tuple[QuickView, Callable[[], int]]]

RESOLVE_PATH = "/api/v1/resolve"
OFREP_FLAG_PREFIX = "/ofrep/v1/evaluate/flags/"

# What each middleware does to a cookie-less POST answered by a serving view's hot path:
# A failing fast path still answers (through Django), so only the log shows it: once a minute per
# process is enough to see a defect without flooding the log at serving rates.
FAILURE_LOG_INTERVAL_SECONDS = 60

logger = logging.getLogger(__name__)

KNOWN_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",  # request: https redirect; response: headers
    "controlplane.security.ContentSecurityPolicyMiddleware",  # response: the header
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files only
    "django.contrib.sessions.middleware.SessionMiddleware",  # nothing without a cookie or access
    "django.middleware.common.CommonMiddleware",  # request: user agent, host, www; response: length
    "controlplane.middleware.QueryControlCharacterMiddleware",  # request: control characters
    "django.middleware.csrf.CsrfViewMiddleware",  # nothing: the views are csrf_exempt
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # nothing: a lazy user, not read
    "django.contrib.messages.middleware.MessageMiddleware",  # nothing: no message stored
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # response: X-Frame-Options
    "django_htmx.middleware.HtmxMiddleware",  # nothing: request.htmx, not read
)


def _unreachable(request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("the fast path calls the middleware's hooks, never the chain")


class ServingFastPath:
    """WSGI application: the serving hot path, else `application` (Django's).

    `more`: other POST paths answered the same way, each by its view's hot path and with the
    largest body it reads (a callable, so that settings changed at run time apply); the
    composition root (controlplane/wsgi.py) names them, as this package may not import the
    apps above it.
    """

    def __init__(self, application: WSGIHandler, *, more: MorePaths | None = None) -> None:
        self.application = application
        self._more = dict(more or {})
        self._security = SecurityMiddleware(_unreachable)
        self._common = CommonMiddleware(_unreachable)
        self._query_check = QueryControlCharacterMiddleware(_unreachable)
        self._frame_options = XFrameOptionsMiddleware(_unreachable)
        self._content_security_policy = ContentSecurityPolicyMiddleware(_unreachable)
        self._failure_logged_at = -float("inf")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response = self.answer(environ)
        if response is None:
            return self.application(environ, start_response)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        # The body, not the response: closing a response sends request_finished (see answer()).
        return [response.content]

    def answer(self, environ: dict[str, Any]) -> HttpResponse | None:
        """The hot path's answer, or None for Django to answer (the body stays readable)."""
        if environ.get("REQUEST_METHOD") != "POST" or "HTTP_COOKIE" in environ:
            return None
        path = environ.get("PATH_INFO", "")
        if path in self._more:
            body_limit = self._more[path][1]()
        elif path == RESOLVE_PATH or path.startswith(OFREP_FLAG_PREFIX):
            body_limit = settings.FLAGSTAFF_MAX_CONTEXT_BYTES
        else:
            return None
        if tuple(settings.MIDDLEWARE) != KNOWN_MIDDLEWARE:
            return None
        if not _buffer_body(environ, body_limit):
            return None
        set_script_prefix(get_script_name(environ))
        # Django's request_started and request_finished signals are not sent: their dispatch
        # costs more than the answer. What their receivers do that matters to a request that may
        # query the database (the snapshot's revision check) is this, once.
        close_old_connections()
        # A copy: WSGIRequest writes its decoded PATH_INFO and SCRIPT_NAME back into the environ
        # it is given, and Django, handed that environ after a decline, would read them again as
        # latin-1 bytes (PEP 3333) and fail on any character above U+00FF.
        request = WSGIRequest(dict(environ))
        try:
            response = self._respond(request)
        except Exception:
            # A defect, or the database failing under a refresh: Django's handler runs the
            # request again and answers (or logs) as it does for every other request. Logged
            # here too, or a defect of the fast path would only show as a slower answer.
            self._log_failure()
            response = None
        if response is None:
            environ["wsgi.input"].seek(0)
            return None
        return response

    def _log_failure(self) -> None:
        now = time.time()
        if now - self._failure_logged_at >= FAILURE_LOG_INTERVAL_SECONDS:
            self._failure_logged_at = now
            logger.exception("serving fast path failed; Django answers instead")

    def _respond(self, request: WSGIRequest) -> HttpResponse | None:
        try:
            if self._security.process_request(request) is not None:
                return None
            if self._common.process_request(request) is not None:
                return None
            if self._query_check.process_request(request) is not None:
                return None
        except (DisallowedHost, PermissionDenied):
            return None
        path = request.path_info
        if path in self._more:
            response = self._more[path][0](request)
        elif path == RESOLVE_PATH:
            response = ResolveView.quick(request)
        else:
            key = path[len(OFREP_FLAG_PREFIX) :]
            if not key or "/" in key:
                return None
            response = EvaluateFlagView.quick(request, key)
        if response is None:
            return None
        # The response side, bottom-up as Django runs it: X-Frame-Options, Content-Length, the
        # Content-Security-Policy, the security headers.
        self._frame_options.process_response(request, response)
        self._common.process_response(request, response)
        self._content_security_policy.process_response(request, response)
        self._security.process_response(request, response)
        return response


def _buffer_body(environ: dict[str, Any], limit: int) -> bool:
    """Read the body into memory when it has a Content-Length within `limit`, so that both the
    fast path and Django can read it; False (nothing read) otherwise."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    if length < 0 or length > limit:
        return False
    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
    return True
