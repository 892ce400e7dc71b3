"""Serving endpoints: the snapshot, resolve (one flag or many) and the change stream (SSE).

Everything is answered from the process's snapshot (flags.snapshots): a warm request touches
neither the database nor the compiler, and keeps working while the database is down. Request
bodies are parsed here rather than by DRF's parser and serializers: a context is arbitrary
JSON, and no context (deeply nested, huge, lone surrogates) may turn into a 500. The
serializers below document the shapes for the OpenAPI schema.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.errors import DomainError, Forbidden, InvalidInput, NotFound, TooLarge, Unavailable
from controlplane.models import Scope
from controlplane.negotiation import FirstRenderer
from flags.serving_auth import (
    CachedTokenAuthentication,
    ServingPermission,
    StreamTicketAuthentication,
    bound_environment,
    remembered_token,
    token_environment,
)
from flags.snapshots import (
    Served,
    ServedFlag,
    Snapshot,
    SnapshotStore,
    SnapshotUnavailable,
    UnknownEnvironment,
    UnservableFlag,
    get_store,
)
from flagstaff.engine.constraints import lookup

TARGETING_KEY = "targetingKey"
STREAM_RETRY_MILLISECONDS = 2000


class FlagUnservable(DomainError):
    """A server-side defect in one flag's definition; never caused by the request."""

    status_code = 500
    code = "flag_unservable"


def requested_environment(bound: str | None, requested: object) -> str:
    """The environment a resolve is for: the body's, which a token bound to `bound` must match."""
    if requested is None or requested == "":
        if bound is not None:
            return bound
        raise InvalidInput(
            "Name the environment to resolve in.",
            errors=[{"path": "environment", "message": "Required (unless the token is bound to one)."}],
        )
    if not isinstance(requested, str):
        raise InvalidInput(
            "The environment must be a key.", errors=[{"path": "environment", "message": "Must be a string."}]
        )
    if bound is not None and requested != bound:
        raise Forbidden(f"This token is bound to environment '{bound}'.")
    return requested


def current_snapshot(environment: str, store: SnapshotStore | None = None) -> Snapshot:
    try:
        return (store or get_store()).get(environment)
    except UnknownEnvironment:
        raise NotFound(f"No environment with key '{environment}'.") from None
    except SnapshotUnavailable:
        raise Unavailable(
            f"Environment '{environment}' cannot be served right now: the database and the "
            "snapshot cache are both unreachable."
        ) from None


# Request bodies and contexts


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
        try:
            size = len(json.dumps(context, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        except RecursionError:
            size = limit + 1
        if size > limit:
            raise ContextError(f"The context is {size:,} bytes; the limit is {limit:,}.", too_large=True)
    return context


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


def _rest_context_error(error: ContextError) -> DomainError:
    if error.too_large:
        return TooLarge(error.message, code="context_too_large")
    return InvalidInput(
        error.message, code="invalid_context", errors=[{"path": error.path, "message": error.message}]
    )


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [part.strip() for part in header.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)


# Responses


def resolved_body(served: Served) -> dict[str, Any]:
    version = served.version
    body: dict[str, Any] = {
        "flag": served.flag.key,
        "value": version.content if version else None,
        "request": version.request if version else None,
        "beta": version.beta if version else False,
        "variant": served.resolution.variant,
        "reason": served.resolution.reason,
        "flag_state": served.flag_state,
        "metadata": served.metadata(),
    }
    if version is not None and version.request_error:
        body["request_error"] = version.request_error
    return body


_METADATA = inline_serializer(
    "ResolveMetadata",
    {
        "version": serializers.IntegerField(allow_null=True),
        "content_hash": serializers.CharField(allow_null=True),
        "arm": serializers.CharField(allow_null=True),
        "split_id": serializers.CharField(allow_null=True),
        "rule_index": serializers.IntegerField(allow_null=True),
        "revision": serializers.IntegerField(),
        "environment": serializers.CharField(),
    },
)
_RESOLVED = inline_serializer(
    "Resolved",
    {
        "flag": serializers.CharField(),
        "value": serializers.JSONField(allow_null=True, help_text="The config content; null when disabled"),
        "request": serializers.JSONField(
            allow_null=True, help_text="Messages API keyword arguments; secrets as <secret:NAME>"
        ),
        "beta": serializers.BooleanField(help_text="Send with client.beta.messages.create"),
        "variant": serializers.CharField(allow_null=True),
        "reason": serializers.ChoiceField(
            choices=["DISABLED", "TARGETING_MATCH", "SPLIT", "STATIC", "DEFAULT"]
        ),
        "flag_state": serializers.CharField(),
        "metadata": _METADATA,
    },
)
_CONTEXT_HELP = "Evaluation context: a JSON object, at most FLAGSTAFF_MAX_CONTEXT_BYTES"


class ServingView(APIView):
    authentication_classes = [CachedTokenAuthentication, SessionAuthentication]
    permission_classes = [ServingPermission]
    content_negotiation_class: type[BaseContentNegotiation] = FirstRenderer
    serving_scopes: tuple[str, ...] = (Scope.RESOLVE,)


class SnapshotView(ServingView):
    serving_scopes = (Scope.RESOLVE, Scope.READ)

    @extend_schema(
        summary="The environment's snapshot document (docs/serving.md)",
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER)],
        responses={
            200: OpenApiResponse(description="The snapshot"),
            304: OpenApiResponse(description="Unchanged"),
        },
    )
    def get(self, request: Request, env: str) -> HttpResponse:
        snapshot = current_snapshot(env)
        if etag_matches(request.headers.get("If-None-Match"), snapshot.etag):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(snapshot.body, content_type="application/json")
        response["ETag"] = snapshot.etag
        response["Cache-Control"] = "no-cache"
        return response


class ResolveView(ServingView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # The hot path first: a remembered token and a request that resolves cleanly are answered
        # without DRF's request machinery. Anything else (a new token, a session, bad input, an
        # error) goes through DRF, which decides and words the answer.
        response = self.quick(request)
        return response if response is not None else super().dispatch(request, *args, **kwargs)

    @staticmethod
    def quick(request: HttpRequest) -> HttpResponse | None:
        if request.method != "POST":
            return None
        token = remembered_token(request)
        if token is None or Scope.RESOLVE not in token.scopes:
            return None
        try:
            data, size = read_body(request)
            served = resolve_one(data, size, token_environment(token))
        except (BodyError, DomainError):
            return None
        return quick_answer(served, "resolve", encode_resolved)

    @extend_schema(
        summary="Resolve one flag for a context",
        request=inline_serializer(
            "ResolveRequest",
            {
                "flag": serializers.CharField(),
                "environment": serializers.CharField(required=False, help_text="Default: the token's"),
                "context": serializers.JSONField(required=False, help_text=_CONTEXT_HELP),
            },
        ),
        responses={200: _RESOLVED},
    )
    def post(self, request: Request) -> Response:
        data, size = _rest_body(request)
        return Response(resolved_body(resolve_one(data, size, bound_environment(request))))


def resolve_one(data: Mapping[str, Any], body_size: int, bound: str | None) -> Served:
    """A resolve request's answer; raises the DomainError that describes what is wrong with it."""
    flag_key = data.get("flag")
    if not isinstance(flag_key, str) or not flag_key:
        raise InvalidInput(
            "Name the flag to resolve.", errors=[{"path": "flag", "message": "Required: a flag key."}]
        )
    snapshot = current_snapshot(requested_environment(bound, data.get("environment")))
    flag = snapshot.flags.get(flag_key)
    if flag is None:
        raise NotFound(f"No flag '{flag_key}' is served in environment '{snapshot.environment}'.")
    try:
        context = read_context(data, body_size)
        check_units(context, [flag])
    except ContextError as error:
        raise _rest_context_error(error) from None
    try:
        return snapshot.resolve(flag_key, context)
    except UnservableFlag as error:
        raise FlagUnservable(str(error)) from None


def encode_resolved(served: Served) -> bytes:
    return JSONRenderer().render(resolved_body(served))


def quick_answer(served: Served, kind: str, encode: Callable[[Served], bytes]) -> HttpResponse:
    """The hot path's 200: the body encoded once per outcome of the flag in this snapshot, with
    the headers DRF gives the same answer."""
    answers = served.flag.answers
    key = (kind, *served.outcome)
    body = answers.get(key)
    if body is None:
        body = answers[key] = encode(served)
    response = HttpResponse(body, content_type="application/json")
    response["Allow"] = "POST, OPTIONS"
    return response


class BulkResolveView(ServingView):
    @extend_schema(
        summary="Resolve several flags (or all) for one context",
        request=inline_serializer(
            "BulkResolveRequest",
            {
                "environment": serializers.CharField(required=False, help_text="Default: the token's"),
                "flags": serializers.ListField(
                    child=serializers.CharField(), required=False, help_text="Default: every flag"
                ),
                "context": serializers.JSONField(required=False, help_text=_CONTEXT_HELP),
            },
        ),
        responses={
            200: inline_serializer(
                "BulkResolved",
                {
                    "environment": serializers.CharField(),
                    "revision": serializers.IntegerField(),
                    "flags": serializers.DictField(child=_RESOLVED),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        data, size = _rest_body(request)
        environment = requested_environment(bound_environment(request), data.get("environment"))
        snapshot = current_snapshot(environment)
        keys = _requested_flags(data.get("flags"), snapshot)
        flags = [snapshot.flags[key] for key in keys]
        try:
            context = read_context(data, size)
            check_units(context, flags)
        except ContextError as error:
            raise _rest_context_error(error) from None
        results: dict[str, Any] = {}
        for key in keys:
            try:
                results[key] = resolved_body(snapshot.resolve(key, context))
            except UnservableFlag as error:
                results[key] = {"flag": key, "error": {"code": FlagUnservable.code, "detail": str(error)}}
        return Response(
            {"environment": snapshot.environment, "revision": snapshot.revision, "flags": results}
        )


def _rest_body(request: Request) -> tuple[dict[str, Any], int]:
    try:
        return read_body(request)
    except BodyError as error:
        raise InvalidInput(str(error), code="malformed_request") from None


def _requested_flags(requested: object, snapshot: Snapshot) -> list[str]:
    if requested is None:
        return sorted(snapshot.flags)
    if not isinstance(requested, list) or not all(isinstance(key, str) and key for key in requested):
        raise InvalidInput(
            "`flags` lists flag keys.", errors=[{"path": "flags", "message": "Must be a list of flag keys."}]
        )
    keys = list(dict.fromkeys(requested))
    unknown = [key for key in keys if key not in snapshot.flags]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise NotFound(
            f"No flag {names} is served in environment '{snapshot.environment}'.",
            extra={"unknown_flags": unknown},
        )
    return keys


# The change stream


class EventStreamRenderer(BaseRenderer):
    """Lets `Accept: text/event-stream` through content negotiation; errors are still JSON."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return b"" if data is None else json.dumps(data).encode()


_streams_lock = threading.Lock()
_open_streams = 0


def open_streams() -> int:
    """Change streams this process is holding open (each holds a web thread)."""
    return _open_streams


def _count_stream(delta: int) -> None:
    global _open_streams
    with _streams_lock:
        _open_streams += delta


class StreamView(ServingView):
    authentication_classes = [CachedTokenAuthentication, StreamTicketAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    content_negotiation_class = DefaultContentNegotiation
    serving_scopes = (Scope.RESOLVE, Scope.READ)

    @extend_schema(
        summary="Server-sent events: one per revision change of the environment",
        parameters=[
            OpenApiParameter("Last-Event-ID", int, OpenApiParameter.HEADER, description="Resume after"),
            OpenApiParameter("last_event_id", int, description="The same, for clients without headers"),
            OpenApiParameter(
                "format", str, enum=["flagstaff", "ofrep"], description="ofrep: refetchEvaluation"
            ),
            OpenApiParameter(
                "ticket", str, description="Credential from an OFREP bulk response's eventStreams"
            ),
        ],
        responses={200: OpenApiResponse(description="text/event-stream")},
    )
    def get(self, request: Request, env: str) -> StreamingHttpResponse:
        snapshot = current_snapshot(env)
        last_event_id = _last_event_id(request)
        ofrep = request.query_params.get("format", "flagstaff") == "ofrep"
        events = revision_events(get_store(), snapshot, last_event_id, ofrep=ofrep)
        response = StreamingHttpResponse(events, content_type="text/event-stream")
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
) -> Iterator[bytes]:
    """The stream's body: an event per new revision, keep-alive comments between them.

    It ends after FLAGSTAFF_STREAM_MAX_SECONDS, or when the client has gone (the next write
    fails and the server closes this generator). The thread holds no database connection
    while it waits.
    """
    environment = snapshot.environment
    keepalive = settings.FLAGSTAFF_STREAM_KEEPALIVE_SECONDS
    ends_at = time.monotonic() + settings.FLAGSTAFF_STREAM_MAX_SECONDS
    _count_stream(+1)
    try:
        # The reconnection delay for the client; also sends the headers at once.
        yield f"retry: {STREAM_RETRY_MILLISECONDS}\n\n".encode()
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
                yield b": keep-alive\n\n"
    finally:
        _count_stream(-1)


def _event(environment: str, revision: int, *, ofrep: bool) -> bytes:
    if ofrep:
        # OFREP's notification (ADR-0008): the provider re-fetches its bulk evaluation.
        data = json.dumps({"type": "refetchEvaluation"})
        return f"event: message\nid: {revision}\ndata: {data}\n\n".encode()
    data = json.dumps({"environment": environment, "revision": revision}, separators=(",", ":"))
    return f"event: revision\nid: {revision}\ndata: {data}\n\n".encode()


def _release_database_connection() -> None:
    # Hundreds of streams may be open; none should pin a database connection between checks.
    if connection.connection is not None and not connection.in_atomic_block:
        with contextlib.suppress(DatabaseError):
            connection.close()
