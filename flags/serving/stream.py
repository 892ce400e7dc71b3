"""The change stream: `GET /api/v1/environments/{env}/stream`, server-sent events, one per
revision change of the environment (docs/serving.md, "Change stream").

`StreamView` checks a stream request (authentication, tickets, permission, environment,
`Last-Event-ID`, format). In a web process (WSGI) it then holds the stream in the thread, with
`revision` or OFREP events; the stream process (flags.serving.fanout) runs the same checks and
holds streams on its event loop, with pushed changes as well.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.http import HttpResponseBase, StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.errors import DomainError
from controlplane.models import Scope
from flags.serving.auth import CachedTokenAuthentication, StreamTicketAuthentication
from flags.serving.changes import FORMATS, KEEPALIVE, ofrep_event, retry_hint, revision_event
from flags.serving.resolve import ServingView, current_snapshot
from flags.snapshots import Snapshot, SnapshotStore, SnapshotUnavailable, UnknownEnvironment, get_store

STREAM_RETRY_MILLISECONDS = 2000

# The schema of one event of the stream (what SSE clients, and schemathesis, parse the body into).
STREAM_EVENT = inline_serializer(
    "StreamEvent",
    {
        "event": serializers.ChoiceField(choices=["revision", "message"], required=False),
        "id": serializers.CharField(required=False, help_text="The environment's revision"),
        "data": serializers.CharField(required=False, help_text="JSON"),
    },
)
STREAM_DESCRIPTION = """Server-sent events (docs/serving.md), one `revision` event per new revision:

```
retry: 2000

event: revision
id: 1043
data: {"environment":"production","revision":1043}

: keep-alive
```

With `format=ofrep`: `event: message`, `data: {"type": "refetchEvaluation"}`."""


class EventStreamRenderer(BaseRenderer):
    """Lets `Accept: text/event-stream` through content negotiation; errors are still JSON."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return b"" if data is None else json.dumps(data).encode()


class StreamCapacity(DomainError):
    """This process holds FLAGSTAFF_STREAMS_PER_PROCESS streams: the rest of its threads are
    kept for requests. Clients retry later (and may reach another process) or poll."""

    status_code = 503
    code = "stream_capacity"


_streams_lock = threading.Lock()
_open_streams = 0


def open_streams() -> int:
    """Change streams this process is holding open (each holds a web thread)."""
    return _open_streams


def _hold_stream() -> bool:
    """Take one of the process's stream places; False when they are all held."""
    global _open_streams
    limit = settings.FLAGSTAFF_STREAMS_PER_PROCESS
    with _streams_lock:
        if limit and _open_streams >= limit:
            return False
        _open_streams += 1
        return True


class _HeldStream:
    """A stream's body that gives its place back when the server closes it: after the last
    write, when the client has gone, or when it never started (the client left first)."""

    def __init__(self, events: Generator[bytes, None, None]) -> None:
        self._events = events
        self._held = True

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        global _open_streams
        self._events.close()
        with _streams_lock:
            if self._held:
                self._held = False
                _open_streams -= 1


@dataclass(frozen=True, slots=True)
class StreamOpening:
    """A stream request that passed the checks."""

    environment: str
    snapshot: Snapshot
    last_event_id: int | None
    """None when absent or not a number."""
    format: str
    """flagstaff, ofrep or changes (flags.serving.changes.FORMATS)."""


class StreamView(ServingView):
    authentication_classes = [CachedTokenAuthentication, StreamTicketAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    content_negotiation_class = DefaultContentNegotiation
    serving_scopes = (Scope.RESOLVE, Scope.READ)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if isinstance(exc, StreamCapacity):
            response["Retry-After"] = str(STREAM_RETRY_MILLISECONDS // 1000)
        return response

    @extend_schema(
        summary="Server-sent events: one per revision change of the environment",
        parameters=[
            OpenApiParameter("Last-Event-ID", int, OpenApiParameter.HEADER, description="Resume after"),
            OpenApiParameter("last_event_id", int, description="The same, for clients without headers"),
            OpenApiParameter(
                "format",
                str,
                enum=list(FORMATS),
                description="ofrep: refetchEvaluation; changes: pushed changes (the stream process)",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                STREAM_EVENT,
                description=STREAM_DESCRIPTION,
                examples=[
                    OpenApiExample(
                        "revision",
                        {
                            "event": "revision",
                            "id": "1043",
                            "data": '{"environment":"production","revision":1043}',
                        },
                    ),
                    OpenApiExample(
                        "format=ofrep",
                        {"event": "message", "id": "1044", "data": '{"type": "refetchEvaluation"}'},
                    ),
                ],
            ),
            503: OpenApiResponse(description="This process holds all the streams it may; Retry-After"),
        },
    )
    def get(self, request: Request, env: str) -> HttpResponseBase:
        requested = request.query_params.get("format", "flagstaff")
        opening = StreamOpening(
            environment=env,
            snapshot=current_snapshot(env),
            last_event_id=_last_event_id(request),
            # An unknown format gets the default: a client asking for a newer one than this
            # server has is sent `revision` events, which every client handles.
            format=requested if requested in FORMATS else "flagstaff",
        )
        return self.stream_response(opening)

    def stream_response(self, opening: StreamOpening) -> HttpResponseBase:
        """Hold the stream in this thread. A web process has no pushed changes: `changes`
        clients get `revision` events, and fetch the snapshot on each."""
        if not _hold_stream():
            raise StreamCapacity(
                f"This server process holds {settings.FLAGSTAFF_STREAMS_PER_PROCESS} change streams, "
                "its limit; retry shortly, or poll the snapshot meanwhile."
            )
        ofrep = opening.format == "ofrep"
        events = revision_events(get_store(), opening.snapshot, opening.last_event_id, ofrep=ofrep)
        response = StreamingHttpResponse(_HeldStream(events), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # no proxy buffering of the events
        return response


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id")
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


def revision_events(
    store: SnapshotStore, snapshot: Snapshot, last_event_id: int | None, *, ofrep: bool
) -> Generator[bytes, None, None]:
    """The stream's body: an event per new revision, keep-alive comments between them.

    It ends after FLAGSTAFF_STREAM_MAX_SECONDS, or when the client has gone (the next write
    fails and the server closes this generator). The thread holds no database connection
    while it waits.
    """
    environment = snapshot.environment
    keepalive = settings.FLAGSTAFF_STREAM_KEEPALIVE_SECONDS
    ends_at = time.monotonic() + settings.FLAGSTAFF_STREAM_MAX_SECONDS
    # The reconnection delay for the client; also sends the headers at once.
    yield retry_hint(STREAM_RETRY_MILLISECONDS)
    revision = snapshot.revision
    if last_event_id != revision and not (ofrep and last_event_id is None):
        yield _event(environment, revision, ofrep=ofrep)
    while True:
        remaining = ends_at - time.monotonic()
        if remaining <= 0:
            return
        try:
            snapshot = store.wait_for_change(environment, revision, min(keepalive, remaining))
        except (UnknownEnvironment, SnapshotUnavailable):
            return
        finally:
            _release_database_connection()
        if snapshot.revision > revision:
            revision = snapshot.revision
            yield _event(environment, revision, ofrep=ofrep)
        else:
            yield KEEPALIVE


def _event(environment: str, revision: int, *, ofrep: bool) -> bytes:
    return ofrep_event(revision) if ofrep else revision_event(environment, revision)


def _release_database_connection() -> None:
    # Hundreds of streams may be open; none should pin a database connection between checks.
    if connection.connection is not None and not connection.in_atomic_block:
        with contextlib.suppress(DatabaseError):
            connection.close()
