"""The serving fast path in front of Django (flags.serving.wsgi): for every request, the status,
headers and body Django's own handler gives, and Django's handler for everything it does not
answer itself (with the body still readable)."""

import http.client
import json
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import time_machine
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings
from django.urls import resolve

from controlplane.services import IssuedToken
from flags.models import Environment
from flags.serving.ofrep import EvaluateFlagView
from flags.serving.resolve import ResolveView
from flags.serving.wsgi import (
    FAILURE_LOG_INTERVAL_SECONDS,
    KNOWN_MIDDLEWARE,
    OFREP_FLAG_PREFIX,
    RESOLVE_PATH,
    ServingFastPath,
)
from tests.flags.serving_helpers import (
    Answer,
    Served,
    call,
    environ_for,
    every_outcome,
    fresh_store,
    resolve_token,
    set_split,
    unit_in,
)

# transaction=True: both handlers close obsolete database connections, as they do in a server,
# which a test wrapped in a transaction would not survive.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store")]
__all__ = ["fresh_store"]
OFREP_PATH = f"{OFREP_FLAG_PREFIX}support-chat"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def token(production: Environment) -> IssuedToken:
    return resolve_token(production)


@pytest.fixture
def django_app() -> WSGIHandler:
    return WSGIHandler()


@pytest.fixture
def fast(django_app: WSGIHandler, chat: Served, token: IssuedToken) -> ServingFastPath:
    # The first request authenticates the token the full way (Django), and so remembers it.
    status, _, _ = call(django_app, environ_for(RESOLVE_PATH, {"flag": "support-chat"}, token))
    assert status == "200 OK"
    return ServingFastPath(django_app)


def both(fast: ServingFastPath, path: str, body: Any, token: IssuedToken | None, **options: Any) -> Answer:
    """The fast path's answer, checked to be exactly Django's for the same request."""
    answer = call(fast, environ_for(path, body, token, **options))
    assert answer == call(fast.application, environ_for(path, body, token, **options))
    return answer


def test_urls__the_fast_paths_are_the_views_django_routes_them_to() -> None:
    assert resolve(RESOLVE_PATH).func.view_class is ResolveView  # type: ignore[attr-defined]
    match = resolve(OFREP_PATH)
    assert match.func.view_class is EvaluateFlagView  # type: ignore[attr-defined]
    assert match.kwargs == {"key": "support-chat"}


def test_middleware__the_project_runs_the_list_the_fast_path_was_written_for() -> None:
    # A changed list disables the fast path (every request goes to Django): review
    # flags/serving/wsgi.py for what the new middleware does to a serving answer, then update it.
    assert tuple(settings.MIDDLEWARE) == KNOWN_MIDDLEWARE


def test_resolve__every_outcome__answered_by_the_fast_path_as_django_answers(
    fast: ServingFastPath, chat: Served, token: IssuedToken
) -> None:
    for context in every_outcome(chat):
        body = {"flag": "support-chat", "context": context}
        assert fast.answer(environ_for(RESOLVE_PATH, body, token)) is not None
        status, headers, content = both(fast, RESOLVE_PATH, body, token)
        assert status == "200 OK"
        assert ("Content-Length", str(len(content))) in headers
        assert ("X-Frame-Options", "DENY") in headers


def test_ofrep__answered_by_the_fast_path_as_django_answers(
    fast: ServingFastPath, chat: Served, token: IssuedToken
) -> None:
    split = set_split(chat, weight=1000, candidate=2)
    for unit in (unit_in(split, low=0, high=1000), unit_in(split, low=2000, high=10_000)):
        body = {"context": {"targetingKey": unit}}
        assert fast.answer(environ_for(OFREP_PATH, body, token)) is not None
        status, _, content = both(fast, OFREP_PATH, body, token)
        assert status == "200 OK"
        assert json.loads(content)["reason"] == "SPLIT"


@override_settings(
    SECURE_HSTS_SECONDS=3600,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_REFERRER_POLICY="no-referrer",
    SECURE_CROSS_ORIGIN_OPENER_POLICY="same-origin-allow-popups",
    X_FRAME_OPTIONS="SAMEORIGIN",
)
def test_security_settings__the_headers_django_adds(fast: ServingFastPath, token: IssuedToken) -> None:
    fast = ServingFastPath(WSGIHandler())  # middleware read the settings when made
    body = {"flag": "support-chat"}

    _, headers, _ = both(fast, RESOLVE_PATH, body, token, **{"wsgi.url_scheme": "https"})

    assert fast.answer(environ_for(RESOLVE_PATH, body, token, **{"wsgi.url_scheme": "https"})) is not None
    assert ("Strict-Transport-Security", "max-age=3600; includeSubDomains") in headers
    assert ("X-Frame-Options", "SAMEORIGIN") in headers
    assert ("Referrer-Policy", "no-referrer") in headers


@override_settings(SECURE_SSL_REDIRECT=True)
def test_ssl_redirect__plain_http_left_to_django_which_redirects(
    fast: ServingFastPath, token: IssuedToken
) -> None:
    fast = ServingFastPath(WSGIHandler())
    body = {"flag": "support-chat"}

    assert fast.answer(environ_for(RESOLVE_PATH, body, token)) is None
    status, headers, _ = both(fast, RESOLVE_PATH, body, token)
    assert status.startswith("301")
    assert ("Location", "https://testserver/api/v1/resolve") in headers


@pytest.mark.parametrize(
    ("path", "body", "options", "status"),
    [
        (RESOLVE_PATH, b"{not json", {}, "400"),
        (RESOLVE_PATH, {"flag": "no-such-flag"}, {}, "404"),
        (RESOLVE_PATH, {"flag": "support-chat", "context": {"targetingKey": 7}}, {}, "400"),
        (RESOLVE_PATH, {"flag": "support-chat", "context": {"blob": "x" * 70_000}}, {}, "413"),
        (RESOLVE_PATH, {"flag": "support-chat"}, {"REQUEST_METHOD": "PUT"}, "405"),
        (RESOLVE_PATH, {"flag": "support-chat"}, {"HTTP_COOKIE": "sessionid=nope"}, "200"),
        (RESOLVE_PATH, {"flag": "support-chat"}, {"HTTP_HOST": "evil.example"}, "400"),
        (RESOLVE_PATH, {"flag": "support-chat"}, {"HTTP_AUTHORIZATION": "Bearer fs_unknown"}, "401"),
        (f"{RESOLVE_PATH}/", {"flag": "support-chat"}, {}, "404"),
        (f"{OFREP_PATH}/more", {"context": {"targetingKey": "u1"}}, {}, "404"),
        (OFREP_FLAG_PREFIX, {"context": {"targetingKey": "u1"}}, {}, "404"),
        (f"{OFREP_FLAG_PREFIX}no-such-flag", {"context": {"targetingKey": "u1"}}, {}, "404"),
    ],
    ids=["bad-json", "unknown-flag", "unit-not-string", "context-too-large", "put", "cookie",
         "disallowed-host", "unknown-token", "trailing-slash",
         "ofrep-key-with-slash", "ofrep-no-key", "ofrep-unknown-flag"],
)  # fmt: skip
def test_anything_else__left_to_django__with_the_body_still_readable(
    fast: ServingFastPath, token: IssuedToken, path: str, body: Any, options: dict[str, Any], status: str
) -> None:
    assert fast.answer(environ_for(path, body, token, **options)) is None

    answer = both(fast, path, body, token, **options)

    assert answer[0].startswith(status), answer


def test_body_without_content_length__left_to_django(fast: ServingFastPath, token: IssuedToken) -> None:
    environ = environ_for(RESOLVE_PATH, {"flag": "support-chat"}, token)
    del environ["CONTENT_LENGTH"]

    assert fast.answer(environ) is None
    assert environ["wsgi.input"].tell() == 0


def test_other_middleware__every_request_left_to_django(fast: ServingFastPath, token: IssuedToken) -> None:
    body = {"flag": "support-chat"}
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]):
        assert fast.answer(environ_for(RESOLVE_PATH, body, token)) is None
    assert fast.answer(environ_for(RESOLVE_PATH, body, token)) is not None


def test_fast_path_failure__django_answers_and_logged_once_a_minute(
    fast: ServingFastPath,
    token: IssuedToken,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class DefectiveResolveView:
        @staticmethod
        def quick(request: Any) -> None:
            raise RuntimeError("defect in the quick path")

    # Only the fast path's view is defective; Django's routes still reach the real one.
    monkeypatch.setattr("flags.serving.wsgi.ResolveView", DefectiveResolveView)
    body = {"flag": "support-chat"}

    with time_machine.travel(1_000_000, tick=False) as clock:
        answers = [call(fast, environ_for(RESOLVE_PATH, body, token))[0] for _ in range(3)]
        clock.shift(FAILURE_LOG_INTERVAL_SECONDS)
        answers.append(call(fast, environ_for(RESOLVE_PATH, body, token))[0])

    assert answers == ["200 OK"] * 4
    logged = [r for r in caplog.records if r.name == "flags.serving.wsgi"]
    assert [(r.levelname, str(r.exc_info[1]) if r.exc_info else None) for r in logged] == [
        ("ERROR", "defect in the quick path")
    ] * 2


@pytest.mark.parametrize("path", [RESOLVE_PATH, OFREP_PATH])
def test_fast_path__control_character_in_the_query__django_answers_400(
    fast: ServingFastPath, token: IssuedToken, path: str
) -> None:
    status, _, body = both(fast, path, {"flag": "support-chat", "context": {}}, token, QUERY_STRING="x=%00")

    assert status == "400 Bad Request"
    assert json.loads(body)["code"] == "invalid_query_parameter"


def test_ofrep_without_token__key_above_latin1__django_answers_4xx_through_the_real_wsgi_app() -> None:
    # The request from the probe, through a real HTTP server and the project's WSGI application:
    # the fast path declines it (no token), and Django, handed the same environ, must still read
    # the path as the server wrote it (latin-1 code points, PEP 3333), not a decoded copy.
    from controlplane.wsgi import application

    server = make_server("127.0.0.1", 0, application, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request(
            "POST", f"{OFREP_FLAG_PREFIX}%E2%82%AC", headers={"Content-Length": "0", "Host": "testserver"}
        )
        response = connection.getresponse()
        body = response.read()
        connection.close()
    finally:
        server.shutdown()
        server.server_close()

    assert response.status == 401, body
