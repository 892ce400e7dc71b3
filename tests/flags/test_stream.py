"""The change stream (SSE) against a live server, read with a plain HTTP client."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import time_machine
from django.conf import settings
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from controlplane import errors
from controlplane.services import IssuedToken
from flags import services
from flags.models import Environment
from flags.serving.auth import StreamTicketAuthentication, stream_ticket
from flags.serving.stream import open_streams
from flags.snapshots import get_store, redis_link, reset_store
from flagstaff.canonical import canonical_json
from tests.factories import make_environment, make_token
from tests.flags.serving_helpers import ACTOR, Served, fresh_store, resolve_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store", "fast_stream")]
__all__ = ["fresh_store"]


@pytest.fixture
def fast_stream() -> Iterator[None]:
    with override_settings(FLAGSTAFF_STREAM_KEEPALIVE_SECONDS=0.2, FLAGSTAFF_STREAM_MAX_SECONDS=30):
        yield


@pytest.fixture
def token(production: Environment) -> IssuedToken:
    return resolve_token(production)


def revision(environment: Environment) -> int:
    return Environment.objects.get(pk=environment.pk).revision


@dataclass
class Block:
    """One SSE block: its fields, or a comment."""

    fields: dict[str, str] = field(default_factory=dict)
    comment: str | None = None

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"])


class Stream:
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        self.connection.request("GET", f"{parts.path}?{parts.query}", headers=headers or {})
        self.response = self.connection.getresponse()

    def block(self) -> Block | None:
        """The next block, or None at the end of the stream."""
        block = Block()
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if block.fields or block.comment is not None:
                    return block
                continue
            if text.startswith(":"):
                block.comment = text[1:].strip()
            else:
                name, _, value = text.partition(":")
                block.fields[name] = value.strip()

    def event(self) -> Block:
        """The next event, skipping keep-alives and the retry hint."""
        while True:
            block = self.block()
            assert block is not None, "the stream ended"
            if "event" in block.fields:
                return block

    def close(self) -> None:
        # The response holds its own reference to the socket: both must go for it to close.
        self.response.close()
        self.connection.close()


def streams_drained(timeout: float = 5.0) -> bool:
    """Wait until this process holds no stream (the server closes them a moment after the client)."""
    deadline = time.monotonic() + timeout
    while open_streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    return open_streams() == 0


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def open_stream(
    streams: list[Stream], live_server: LiveServer, token: IssuedToken | None, query: str = "", **headers: str
) -> Stream:
    if token is not None:
        headers["Authorization"] = f"Bearer {token.secret}"
    stream = Stream(f"{live_server.url}/api/v1/environments/production/stream?{query}", headers)
    streams.append(stream)
    return stream


def test_stream__connect__event_stream_with_retry_hint_and_current_revision(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token)

    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type") == "text/event-stream"
    assert stream.response.getheader("Cache-Control") == "no-cache"
    assert stream.block() == Block(fields={"retry": "2000"})
    event = stream.event()
    rev = revision(production)
    assert (event.fields["event"], event.fields["id"], event.data) == (
        "revision",
        str(rev),
        {"environment": "production", "revision": rev},
    )


def test_stream__write_committed__event_with_the_new_revision(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token)
    first = int(stream.event().fields["id"])

    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    event = stream.event()
    assert int(event.fields["id"]) == revision(production) > first
    assert event.data == {"environment": "production", "revision": revision(production)}


def test_stream__revision_bumped_without_announcement__found_by_the_revision_check(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token)
    first = int(stream.event().fields["id"])

    Environment.objects.filter(pk=production.pk).update(revision=F("revision") + 1)

    assert int(stream.event().fields["id"]) == first + 1


def test_stream__last_event_id_current__no_event_until_a_change_only_keep_alives(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token, **{"Last-Event-ID": str(revision(production))})

    blocks = [stream.block() for _ in range(3)]

    assert blocks == [
        Block(fields={"retry": "2000"}),
        Block(comment="keep-alive"),
        Block(comment="keep-alive"),
    ]


def test_stream__last_event_id_behind__current_revision_sent_at_once(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token, **{"Last-Event-ID": "0"})

    assert int(stream.event().fields["id"]) == revision(production)


def test_stream__last_event_id_query_parameter__honoured(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token, query=f"last_event_id={revision(production)}")

    assert [stream.block(), stream.block()] == [Block(fields={"retry": "2000"}), Block(comment="keep-alive")]


def test_stream__max_duration_reached__stream_ends(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, chat: Served
) -> None:
    with override_settings(FLAGSTAFF_STREAM_MAX_SECONDS=0.5):
        stream = open_stream(streams, live_server, token)
        started = time.monotonic()
        while stream.block() is not None:
            pass

    assert time.monotonic() - started < 3


def test_stream__client_disconnects__server_side_stream_ends(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token)
    stream.event()
    assert open_streams() == 1

    stream.close()

    assert streams_drained()


def test_stream__process_at_its_stream_limit__503_with_retry_after_until_one_ends(
    live_server: LiveServer,
    streams: list[Stream],
    token: IssuedToken,
    chat: Served,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert streams_drained(), "an earlier test's stream is still open"
    monkeypatch.setattr(errors, "_refusals", {})
    with override_settings(FLAGSTAFF_STREAMS_PER_PROCESS=1):
        first = open_stream(streams, live_server, token)
        first.event()

        refusals = [open_stream(streams, live_server, token) for _ in range(3)]
        for refused in refusals:
            assert refused.response.status == 503
            assert refused.response.getheader("Retry-After") == "2"
            body = json.loads(refused.response.read())
            assert body["code"] == "stream_capacity"
            assert "limit" in body["detail"]
        # One throttled warning for the burst, no error per refusal.
        logged = [(r.name, r.levelname) for r in caplog.records if "stream" in r.getMessage()]
        assert logged == [("flags.serving.stream", "WARNING")]

        first.close()
        assert streams_drained()
        again = open_stream(streams, live_server, token)
        assert again.response.status == 200
        assert again.event().fields["event"] == "revision"


def test_stream__limit_zero__no_limit(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, chat: Served
) -> None:
    with override_settings(FLAGSTAFF_STREAMS_PER_PROCESS=0):
        opened = [open_stream(streams, live_server, token) for _ in range(3)]

        assert [stream.response.status for stream in opened] == [200, 200, 200]
        for stream in opened:
            stream.event()


def test_stream__ofrep_format__refetch_evaluation_events_only_on_change(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = open_stream(streams, live_server, token, query="format=ofrep")
    assert [stream.block(), stream.block()] == [Block(fields={"retry": "2000"}), Block(comment="keep-alive")]

    services.publish_version(flag=chat.flag, environment=production, number=2, actor=ACTOR)

    event = stream.event()
    assert (event.fields["event"], event.fields["id"], event.data) == (
        "message",
        str(revision(production)),
        {"type": "refetchEvaluation"},
    )


# credentials


def bulk_stream_url(live_server: LiveServer, token: IssuedToken) -> str:
    response = requests.post(
        f"{live_server.url}/ofrep/v1/evaluate/flags",
        json={"context": {}},
        headers={"Authorization": f"Bearer {token.secret}"},
        timeout=10,
    )
    url: str = response.json()["eventStreams"][0]["url"]
    return url


def test_stream__ticket_from_ofrep_bulk__no_header_needed(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    stream = Stream(bulk_stream_url(live_server, token))
    streams.append(stream)

    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    assert stream.response.status == 200
    assert stream.event().data == {"type": "refetchEvaluation"}


def test_stream__tampered_ticket__401(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, chat: Served
) -> None:
    url = bulk_stream_url(live_server, token)

    stream = Stream(url[:-3] + "xyz")
    streams.append(stream)

    assert stream.response.status == 401


def test_stream__ticket_of_another_environment__401(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, chat: Served
) -> None:
    make_environment(key="staging")
    url = bulk_stream_url(live_server, token).replace("/production/", "/staging/")

    stream = Stream(url)
    streams.append(stream)

    assert stream.response.status == 401


def test_stream__ticket_used_a_second_time__401(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, chat: Served
) -> None:
    url = bulk_stream_url(live_server, token)
    first = Stream(url)
    streams.append(first)
    assert first.response.status == 200

    second = Stream(url)
    streams.append(second)

    assert second.response.status == 401


def test_stream_ticket__older_than_its_validity__refused(token: IssuedToken) -> None:
    ticket = stream_ticket(token.token, "production")
    request = Request(
        APIRequestFactory().get(f"/api/v1/environments/production/stream?ticket={ticket}"),
        parser_context={"kwargs": {"env": "production"}},
    )

    with (
        time_machine.travel(timezone.now() + timedelta(seconds=settings.FLAGSTAFF_STREAM_TICKET_SECONDS + 1)),
        pytest.raises(AuthenticationFailed),
    ):
        StreamTicketAuthentication().authenticate(request)


def test_stream__anonymous__401(live_server: LiveServer, streams: list[Stream], chat: Served) -> None:
    assert open_stream(streams, live_server, None).response.status == 401


def test_stream__read_token__200(live_server: LiveServer, streams: list[Stream], chat: Served) -> None:
    assert open_stream(streams, live_server, make_token(scopes=["read"])).response.status == 200


def test_stream__telemetry_token__403(live_server: LiveServer, streams: list[Stream], chat: Served) -> None:
    assert open_stream(streams, live_server, make_token(scopes=["telemetry"])).response.status == 403


def test_stream__token_bound_to_another_environment__403(
    live_server: LiveServer, streams: list[Stream], chat: Served
) -> None:
    staging = make_environment(key="staging")

    assert open_stream(streams, live_server, resolve_token(staging)).response.status == 403


def test_stream__unknown_environment__404(live_server: LiveServer) -> None:
    response = requests.get(
        f"{live_server.url}/api/v1/environments/nowhere/stream",
        headers={"Authorization": f"Bearer {resolve_token().secret}", "Accept": "text/event-stream"},
        timeout=10,
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# across processes, through Redis


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the PostgreSQL + Redis pass)")
def test_stream__announcement_from_another_process__event_without_revision_checks(
    live_server: LiveServer, streams: list[Stream], token: IssuedToken, production: Environment, chat: Served
) -> None:
    reset_store()
    with override_settings(FLAGSTAFF_REVISION_CHECK_SECONDS=3600, FLAGSTAFF_REVISION_RECHECK_SECONDS=3600):
        stream = open_stream(streams, live_server, token)
        first = int(stream.event().fields["id"])
        deadline = time.monotonic() + 5
        while not get_store().listening:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # Another process's write: the row changes and only the announcement tells this one.
        Environment.objects.filter(pk=production.pk).update(revision=F("revision") + 1)
        link = redis_link()
        assert link is not None
        link.client.publish(
            link.channel, canonical_json({"environment": "production", "revision": first + 1})
        )

        assert int(stream.event().fields["id"]) == first + 1


# where clients find the stream process


@override_settings(FLAGSTAFF_STREAM_URL="https://streams.example.com")
def test_snapshot__stream_url_set__answer_names_the_stream_process(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = requests.get(
        f"{live_server.url}/api/v1/environments/production/snapshot",
        headers={"Authorization": f"Bearer {token.secret}"},
        timeout=30,
    )

    assert (
        response.headers["Flagstaff-Stream"]
        == "https://streams.example.com/api/v1/environments/production/stream"
    )


@override_settings(FLAGSTAFF_STREAM_URL="https://streams.example.com")
def test_ofrep_bulk__stream_url_set__event_stream_at_the_stream_process(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    url = bulk_stream_url(live_server, token)

    assert url.startswith(
        "https://streams.example.com/api/v1/environments/production/stream?format=ofrep&ticket="
    )


def test_snapshot__stream_url_not_set__no_header(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = requests.get(
        f"{live_server.url}/api/v1/environments/production/snapshot",
        headers={"Authorization": f"Bearer {token.secret}"},
        timeout=30,
    )

    assert "Flagstaff-Stream" not in response.headers
