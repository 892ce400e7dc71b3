"""Serving endpoints: the snapshot and resolve (one flag or many). The change stream is in
flags.serving.stream, the serving authentication in flags.serving.auth.

Everything is answered from the process's snapshot (flags.snapshots): a warm request touches
neither the database nor the compiler, and keeps working while the database is down. Request
bodies are read by flags.serving.requests rather than by DRF's parser and serializers; the
serializers below only document the shapes for the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.errors import DomainError, Forbidden, InvalidInput, NotFound, TooLarge, Unavailable
from controlplane.models import Scope
from controlplane.negotiation import FirstRenderer
from flags.api import examples
from flags.serving.auth import (
    CachedTokenAuthentication,
    ServingPermission,
    bound_environment,
    remembered_token,
    token_environment,
)
from flags.serving.requests import BodyError, ContextError, check_units, etag_matches, read_body, read_context
from flags.snapshots import (
    Served,
    Snapshot,
    SnapshotStore,
    SnapshotUnavailable,
    UnknownEnvironment,
    UnservableFlag,
    get_store,
)


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


STREAM_URL_HEADER = "Flagstaff-Stream"


def stream_url(request: HttpRequest, environment: str) -> str:
    """The absolute URL of the environment's change stream: at FLAGSTAFF_STREAM_URL (the
    stream process) when it is set, else on this request's origin."""
    path = reverse("api:environment-stream", kwargs={"env": environment})
    if settings.FLAGSTAFF_STREAM_URL:
        return settings.FLAGSTAFF_STREAM_URL + path
    return request.build_absolute_uri(path)


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


# Request errors


def _rest_context_error(error: ContextError) -> DomainError:
    if error.too_large:
        return TooLarge(error.message, code="context_too_large")
    return InvalidInput(
        error.message, code="invalid_context", errors=[{"path": error.path, "message": error.message}]
    )


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
FLAG_NOT_SERVED = Refusal(404, "not_found", "No flag 'support-chat' is served in environment 'production'.")


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
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The snapshot: every flag's state and the version contents, by hash",
                examples=[response_example("production", examples.SNAPSHOT)],
            ),
            304: OpenApiResponse(description="Unchanged since the ETag sent in If-None-Match"),
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
        if settings.FLAGSTAFF_STREAM_URL:
            # Where clients follow the changes (docs/serving.md, "The stream process").
            response[STREAM_URL_HEADER] = stream_url(request, env)
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
        responses={200: _RESOLVED, **refusals(FLAG_NOT_SERVED)},
        examples=[
            request_example(
                "one flag", {"flag": "support-chat", "environment": "production", "context": examples.CONTEXT}
            ),
            response_example("in the 10 % split", examples.RESOLVED),
        ],
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
            ),
            **refusals(FLAG_NOT_SERVED),
        },
        examples=[
            request_example(
                "two flags",
                {
                    "environment": "production",
                    "flags": ["support-chat", "order-summary"],
                    "context": examples.CONTEXT,
                },
            ),
            response_example(
                "two flags",
                {
                    "environment": "production",
                    "revision": 1043,
                    "flags": {
                        "support-chat": examples.RESOLVED,
                        "order-summary": {
                            **examples.RESOLVED,
                            "flag": "order-summary",
                            "value": None,
                            "request": None,
                            "variant": None,
                            "reason": "DISABLED",
                            "flag_state": "fs1:production:order-summary:-:-:-:1043",
                            "metadata": {
                                **examples.RESOLVED["metadata"],
                                "version": None,
                                "content_hash": None,
                                "arm": None,
                                "split_id": None,
                            },
                        },
                    },
                },
            ),
        ],
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
