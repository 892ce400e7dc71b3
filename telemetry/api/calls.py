"""POST /api/v1/telemetry/calls: services send batches of per-call records.

The body is read and parsed here rather than by a DRF parser: it may be gzip-compressed, its
decoded size is capped before parsing (a small gzip body can expand enormously), and the
records are validated one by one by the service, which reports a path for every problem.
"""

from __future__ import annotations

import gc
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals
from controlplane.auth import request_scopes
from controlplane.errors import InvalidInput, TooLarge
from controlplane.models import ApiToken, Scope
from flags.serving.auth import CachedTokenAuthentication, remembered_token
from telemetry.records import split_batch
from telemetry.services.ingest import ingest_calls

GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
IDENTITY_ENCODINGS = frozenset({"", "identity"})


class CanSendTelemetry(permissions.BasePermission):
    """The telemetry scope. A token bound to one environment may send too: the service then
    accepts only records whose flag_state names that environment (checked per record)."""

    message = "This action needs the 'telemetry' scope, which your role or token does not have."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return Scope.TELEMETRY in request_scopes(request)


class UsageDocSerializer(serializers.Serializer[Any]):
    input_tokens = serializers.IntegerField(min_value=0, required=False)
    output_tokens = serializers.IntegerField(min_value=0, required=False)
    cache_creation_input_tokens = serializers.IntegerField(min_value=0, required=False)
    cache_read_input_tokens = serializers.IntegerField(min_value=0, required=False)
    cache_creation = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)
    server_tool_use = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)
    iterations = serializers.ListField(child=serializers.DictField(), required=False)
    service_tier = serializers.CharField(required=False)
    inference_geo = serializers.CharField(required=False)


class ErrorDocSerializer(serializers.Serializer[Any]):
    type = serializers.CharField()
    status = serializers.IntegerField(required=False)


class CallRecordDocSerializer(serializers.Serializer[Any]):
    """One call as the service logged it (documentation of the shape; validation is the service's)."""

    request_id = serializers.CharField(
        max_length=200,
        help_text="The call's id; a record is stored once per request_id and environment (the one its "
        "flag_state names), so a repeat is a duplicate and the same id from another environment is not",
    )
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601; the time of receipt if absent")
    model = serializers.CharField(max_length=100)
    stop_reason = serializers.CharField(required=False, allow_null=True)
    usage = UsageDocSerializer(required=False)
    latency_ms = serializers.FloatField(required=False, allow_null=True)
    ttft_ms = serializers.FloatField(required=False, allow_null=True)
    flag_state = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="The `flag_state` token of the resolution that chose this call's config, sent back as "
        "received (e.g. fs1:production:support-chat:7:candidate:split-12:1043). It attributes the call "
        "to its environment, flag, version and arm; without it the call counts only as unattributed.",
    )
    user_id = serializers.CharField(required=False, allow_null=True)
    session_id = serializers.CharField(required=False, allow_null=True)
    surface = serializers.CharField(required=False, allow_null=True)
    error = ErrorDocSerializer(required=False, allow_null=True)
    sample = serializers.DictField(required=False, allow_null=True, help_text="{input, output}")


class CallBatchDocSerializer(serializers.Serializer[Any]):
    records = CallRecordDocSerializer(many=True)


class IngestResultDocSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Records stored by this request")
    duplicate = serializers.IntegerField(
        help_text="Records already stored in the same environment (acknowledged, not counted again)"
    )
    rejected = inline_serializer(
        "TelemetryRejection",
        {
            "index": serializers.IntegerField(),
            "errors": serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
        },
        many=True,
    )
    unattributed = serializers.IntegerField(help_text="Accepted records whose flag_state did not resolve")
    unknown_cost = serializers.IntegerField(help_text="Accepted records of an unknown model or price")
    samples_stored = serializers.IntegerField()
    samples_dropped = serializers.IntegerField(help_text="Samples over the size limit; their calls are kept")


FULL_RECORD = {
    "request_id": "req_011CZ8m2xQ4Yp7eW3kT9vBnA",
    "timestamp": "2026-12-05T14:03:27.512Z",
    "model": "claude-sonnet-5-5",
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 1843,
        "output_tokens": 412,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 12288,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0},
        "service_tier": "standard",
        "inference_geo": "us",
    },
    "latency_ms": 2380.5,
    "ttft_ms": 612.0,
    "flag_state": "fs1:production:support-chat:7:candidate:split-12:1043",
    "user_id": "user-42",
    "session_id": "sess-9f1c",
    "surface": "chat",
    "error": None,
    "sample": {
        "input": [{"role": "user", "content": "Where is my parcel?"}],
        "output": [{"type": "text", "text": "It left the depot this morning."}],
    },
}

INGEST_DESCRIPTION = """One record per Claude call, as the service logged it: the Messages API's `usage`
object as returned, the `stop_reason`, latency and time to first token, and, in `flag_state`,
the token that came with the resolution which chose the config (`POST /api/v1/resolve`, OFREP
`metadata.flag_state`, or `ResolvedConfig.flag_state` in the Python client). Records are
idempotent on `request_id`; unknown keys are ignored; each invalid record is rejected on its
own with `{path, message}` errors and the rest are stored. The body is JSON, or the same JSON
gzip-compressed with `Content-Encoding: gzip`. A failed call sends `error: {type, status}`;
`sample` (the call's input and output) is kept only for sampled calls, for scoring."""


class CallsView(APIView):
    # A sender's token is remembered for FLAGSTAFF_TOKEN_CACHE_SECONDS, as on the serving
    # endpoints: then a batch skips the token's query, and quick() can answer it.
    authentication_classes = [CachedTokenAuthentication, SessionAuthentication]
    permission_classes = [CanSendTelemetry]
    parser_classes: list[Any] = []
    required_scopes = {"POST": Scope.TELEMETRY}

    @extend_schema(
        # No DRF parser reads this body (it may be gzip), so its media type is named here.
        request={"application/json": CallBatchDocSerializer},
        responses={
            200: IngestResultDocSerializer,
            **refusals(
                Refusal(
                    400,
                    "invalid",
                    "The body must be an object with a list of records.",
                    errors=(("records", "Must be a list of call records."),),
                ),
                Refusal(
                    413,
                    "too_many_records",
                    "The batch has 1500 records; at most 1000 are accepted per request.",
                ),
            ),
        },
        summary="Send a batch of call records (up to 1,000; JSON, optionally gzip-compressed)",
        description=INGEST_DESCRIPTION,
        examples=[
            OpenApiExample("one full record", {"records": [FULL_RECORD]}, request_only=True),
            OpenApiExample(
                "answer",
                {
                    "accepted": 1,
                    "duplicate": 0,
                    "rejected": [],
                    "unattributed": 0,
                    "unknown_cost": 0,
                    "samples_stored": 1,
                    "samples_dropped": 0,
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        bound = _bound_environment(token)
        body = _decoded_body(request)
        with collector_paused():
            # Each record's JSON text, decoded and checked in one step by ingest (faster); when
            # the body is not a plain batch, orjson decodes it here and says what is wrong.
            records: Sequence[Any] | None = split_batch(body)
            if records is None:
                records = _records(body)
            else:
                _check_count(records)
            try:
                result = ingest_calls(records=records, bound_environment=bound)
            except orjson.JSONDecodeError:
                _records(body)  # raises the ParseError that names the place
                raise
        return Response(result.as_dict())

    @staticmethod
    def quick(request: HttpRequest) -> HttpResponse | None:
        """The hot path, answered in front of Django (flags/serving/wsgi.py, wired in
        controlplane/wsgi.py): a remembered token with the telemetry scope and a well-formed
        batch are ingested without the middleware stack, DRF's request and the token's query.
        Anything else returns None before anything is stored, and post() decides and words the
        answer. Should the ingest itself fail, Django runs the request again: records are
        idempotent on request_id, so nothing is stored twice."""
        token = remembered_token(request)
        if token is None or Scope.TELEMETRY not in token.scopes:
            return None
        try:
            body = _decoded_body(request)
        except (APIException, RequestDataTooBig):
            return None
        with collector_paused():
            records = split_batch(body)
            if records is None or len(records) > settings.FLAGSTAFF_TELEMETRY_MAX_RECORDS:
                return None
            try:
                result = ingest_calls(records=records, bound_environment=_bound_environment(token))
            except orjson.JSONDecodeError:
                return None
        response = HttpResponse(JSONRenderer().render(result.as_dict()), content_type="application/json")
        response["Allow"] = "POST, OPTIONS"
        return response


def _bound_environment(token: ApiToken | None) -> str | None:
    return token.environment.key if token is not None and token.environment is not None else None


class CollectorPause:
    """Hold Python's cyclic garbage collector off while any batch of the process is processed.

    A 1,000-record batch allocates some 50,000 objects (parsed JSON, rows, rollup keys), all
    freed by reference counting when the request ends; meanwhile the collector would run every
    700 allocations, walk the batch's live objects and promote them towards the full
    collections: measured at about a third of the request's CPU time.

    The collector is one per process and a gthread worker answers several batches at once, so
    the pause is counted: the first batch in switches the collector off, the last one out
    switches it back on (if it was on). Switching it on as each batch ended let it run in the
    middle of the others, over their live objects (py-spy on bench/bench_ingest.py's workers:
    a tenth of their CPU). A process whose batches overlap without a break still collects: a
    batch that ends more than `collect_every` seconds after the last collection runs one, so
    cyclic garbage (other requests', an exception's frames) cannot pile up under steady load.
    """

    def __init__(self, collect_every: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False
        self._collect_every = collect_every
        self._collected_at = 0.0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                self._collected_at = time.monotonic()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            collect = False
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    if self._was_enabled:
                        gc.enable()
                elif self._was_enabled and time.monotonic() - self._collected_at > self._collect_every:
                    self._collected_at = time.monotonic()
                    collect = True
            if collect:
                gc.collect()


collector_paused = CollectorPause()


def _decoded_body(request: Request | HttpRequest) -> bytes:
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json":
        raise UnsupportedMediaType(content_type)
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    body: bytes = request.body  # Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (413)
    limit = settings.FLAGSTAFF_TELEMETRY_MAX_BODY_BYTES
    if encoding in GZIP_ENCODINGS:
        body = _gunzip(body, limit)
    elif encoding not in IDENTITY_ENCODINGS:
        raise UnsupportedMediaType(
            encoding, detail=f"Content-Encoding '{encoding}' is not supported; use gzip."
        )
    if len(body) > limit:
        raise TooLarge(f"The batch is over {limit} bytes; send smaller batches.", code="too_large")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most limit + 1 bytes, so that a gzip bomb costs no more than that."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ParseError("The body is not valid gzip.") from None
    if len(data) > limit:
        raise TooLarge(
            f"The decompressed batch is over {limit} bytes; send smaller batches.", code="too_large"
        )
    if not inflater.eof:
        raise ParseError("The gzip body is truncated.")
    if inflater.unused_data:
        raise ParseError("The gzip body has data after its end; send one gzip member.")
    return data


def _records(body: bytes) -> list[Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"The body is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise InvalidInput(
            "The body must be an object with a list of records.",
            errors=[{"path": "records", "message": "Must be a list of call records."}],
        )
    records: list[Any] = document["records"]
    _check_count(records)
    return records


def _check_count(records: Sequence[Any]) -> None:
    limit = settings.FLAGSTAFF_TELEMETRY_MAX_RECORDS
    if len(records) > limit:
        raise TooLarge(
            f"The batch has {len(records)} records; at most {limit} are accepted per request.",
            code="too_many_records",
        )
