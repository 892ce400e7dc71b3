"""OFREP 0.3.0 (OpenFeature Remote Evaluation Protocol): single and bulk evaluation.

The protocol has no notion of an environment, so it comes from the token: OFREP accepts only
tokens bound to one environment (with the `resolve` scope); any other token gets 403 with an
explanation. Flag values are the config content objects; reasons are OpenFeature's names;
`variant` is always present (`v7`, or `disabled` for a disabled flag, which carries no value so
that the caller's default applies); `metadata` carries the flag_state token.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import permissions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.auth import request_scopes
from controlplane.errors import DomainError
from controlplane.models import ApiToken, Scope
from controlplane.negotiation import FirstRenderer
from flags.api import examples
from flags.serving import rate_limit
from flags.serving.auth import (
    CachedTokenAuthentication,
    bound_environment,
    remembered_token,
    stream_ticket,
    token_environment,
)
from flags.serving.requests import BodyError, ContextError, check_units, etag_matches, read_body, read_context
from flags.serving.resolve import current_snapshot, quick_answer, stream_url
from flags.snapshots import (
    Served,
    ServedFlag,
    Snapshot,
    UnservableFlag,
    redis_link,
)
from flagstaff.engine import unit_of

DISABLED_VARIANT = "disabled"
EVENT_STREAM_INACTIVITY_SECONDS = 120


class OfrepError(DomainError):
    """An error in OFREP's shape: `{key?, errorCode, errorDetails}`."""

    def __init__(self, status: int, error_code: str, details: str, *, key: str | None = None) -> None:
        super().__init__(details, code=error_code)
        self.status_code = status
        self.key = key

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errorCode": self.code, "errorDetails": self.detail}
        if self.key is not None:
            body = {"key": self.key, **body}
        return body


class RateLimited(OfrepError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "GENERAL", f"Too many evaluations for this token; retry after {retry_after} s.")
        self.retry_after = retry_after


class OfrepPermission(permissions.BasePermission):
    message = "Your token does not allow OFREP evaluation."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if Scope.RESOLVE not in request_scopes(request):
            self.message = "OFREP evaluation needs a token with the 'resolve' scope."
            return False
        if bound_environment(request) is None:
            self.message = (
                "OFREP evaluation needs a token bound to one environment: the protocol does not name "
                "an environment, so the token does. Issue a resolve token for the environment to read."
            )
            return False
        return True


class OfrepView(APIView):
    authentication_classes = [CachedTokenAuthentication]
    permission_classes = [OfrepPermission]
    content_negotiation_class = FirstRenderer

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        assert isinstance(request.auth, ApiToken)
        retry_after = _rate_limited(request.auth)
        if retry_after is not None:
            raise RateLimited(retry_after)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if not isinstance(exc, OfrepError) and isinstance(response.data, dict) and "detail" in response.data:
            # Framework errors (401, 403, 413, 503): OFREP wants `errorDetails`, and a code on 400.
            body: dict[str, Any] = {"errorDetails": str(response.data["detail"])}
            if response.status_code == 400:
                body = {"errorCode": "GENERAL", **body}
            response.data = body
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response

    def environment(self, request: Request) -> str:
        environment = bound_environment(request)
        assert environment is not None  # OfrepPermission
        return environment


def _rate_limited(token: ApiToken) -> int | None:
    """Seconds to wait when the token is over its per-second budget, else None."""
    limit = settings.FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND
    if limit <= 0:
        return None
    if rate_limit.take(f"flagstaff:ofrep-rate:{token.pk}", limit, time.time(), redis_link()):
        return None
    return rate_limit.RETRY_AFTER_SECONDS


def _body_and_context(request: HttpRequest | Request, *, key: str | None = None) -> dict[str, Any]:
    try:
        data, size = read_body(request)
        context = read_context(data, size)
        check_units(context, [])
    except BodyError as error:
        raise OfrepError(400, "PARSE_ERROR", str(error), key=key) from None
    except ContextError as error:
        raise OfrepError(400, "INVALID_CONTEXT", error.message, key=key) from None
    return context


def evaluation(served: Served) -> dict[str, Any]:
    """evaluationSuccess; a disabled flag has no `value`, so the caller's default applies."""
    resolution = served.resolution
    metadata = {"flag_state": served.flag_state, **served.metadata()}
    body: dict[str, Any] = {
        "key": served.flag.key,
        "reason": resolution.reason,
        "variant": resolution.variant or DISABLED_VARIANT,
        # OFREP metadata values are strings, numbers or booleans: absent rather than null.
        "metadata": {name: value for name, value in metadata.items() if value is not None},
    }
    if served.version is not None:
        body["value"] = served.version.content
    return body


def evaluate(snapshot: Snapshot, flag: ServedFlag, context: dict[str, Any]) -> dict[str, Any]:
    """One flag's evaluationSuccess; raises OfrepError for the flag's evaluationFailure."""
    return evaluation(evaluated(snapshot, flag, context))


def evaluated(snapshot: Snapshot, flag: ServedFlag, context: dict[str, Any]) -> Served:
    """What the flag serves the context; raises OfrepError for the flag's evaluationFailure."""
    try:
        check_units(context, [flag])
        served = snapshot.resolve(flag.key, context)
    except ContextError as error:
        raise OfrepError(400, "INVALID_CONTEXT", error.message, key=flag.key) from None
    except UnservableFlag as error:
        raise OfrepError(500, "GENERAL", str(error), key=flag.key) from None
    if flag.has_split and served.resolution.reason == "DEFAULT" and _unit_missing(flag, context):
        raise OfrepError(400, "TARGETING_KEY_MISSING", _missing_unit(flag), key=flag.key)
    return served


def _unit_missing(flag: ServedFlag, context: dict[str, Any]) -> bool:
    # DEFAULT in a split means the unit was not bucketed; only a missing unit is the caller's to fix.
    return unit_of(context, flag.stickiness) is None


def _missing_unit(flag: ServedFlag) -> str:
    if flag.stickiness == "targetingKey":
        return f"Flag '{flag.key}' splits traffic by targeting key; set the context's targetingKey."
    return f"Flag '{flag.key}' splits traffic by '{flag.stickiness}'; set it in the context."


def bulk_etag(snapshot: Snapshot, context: dict[str, Any]) -> str:
    """Revision and context together: a new context never gets another context's answers."""
    # Not flagstaff.canonical_json: ASCII escapes, so a context with a lone surrogate (which
    # the engine accepts) still encodes to bytes.
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(f"{snapshot.environment}\n{snapshot.revision}\n{canonical}".encode())
    return f'"{digest.hexdigest()[:40]}"'


_REQUEST = inline_serializer(
    "OfrepEvaluationRequest",
    {"context": serializers.JSONField(required=False, help_text="targetingKey, ...")},
)
_SUCCESS = inline_serializer(
    "OfrepEvaluationSuccess",
    {
        "key": serializers.CharField(),
        "value": serializers.JSONField(required=False, help_text="The config content; absent when disabled"),
        "reason": serializers.CharField(),
        "variant": serializers.CharField(),
        "metadata": serializers.DictField(),
    },
)
_FAILURE = inline_serializer(
    "OfrepEvaluationFailure",
    {
        "key": serializers.CharField(),
        "errorCode": serializers.CharField(),
        "errorDetails": serializers.CharField(),
    },
)
# OFREP's own error shape on 401/403 (OfrepView.handle_exception), not the API's `{code, detail}`.
_REFUSED = inline_serializer(
    "OfrepRefusal",
    {
        "errorCode": serializers.CharField(required=False, help_text="On 400 and 429"),
        "errorDetails": serializers.CharField(),
    },
)


def _failure(status: int, error_code: str, details: str) -> OpenApiResponse:
    return OpenApiResponse(
        _FAILURE,
        description=f"evaluationFailure ({error_code})",
        examples=[
            OpenApiExample(
                error_code,
                {"key": "support-chat", "errorCode": error_code, "errorDetails": details},
                status_codes=[str(status)],
            )
        ],
    )


def _refused(description: str, details: str) -> OpenApiResponse:
    return OpenApiResponse(
        _REFUSED, description=description, examples=[OpenApiExample("refused", {"errorDetails": details})]
    )


_ERRORS: dict[int, OpenApiResponse] = {
    401: _refused("No valid token", "Authentication credentials were not provided."),
    403: _refused(
        "The token is not a resolve token bound to one environment",
        "OFREP evaluation needs a token bound to one environment: the protocol does not name an "
        "environment, so the token does. Issue a resolve token for the environment to read.",
    ),
    413: _refused("The body is too large", "The request body is larger than this server accepts."),
    429: OpenApiResponse(
        _REFUSED,
        description="Over the token's evaluations per second; Retry-After says when to retry",
        examples=[
            OpenApiExample(
                "rate limited",
                {
                    "errorCode": "GENERAL",
                    "errorDetails": "Too many evaluations for this token; retry after 1 s.",
                },
            )
        ],
    ),
}
_OFREP_REQUEST = request_example("a user", {"context": examples.CONTEXT})


class EvaluateFlagView(OfrepView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # The hot path first, as for resolve (flags.serving.resolve.ResolveView): anything unusual,
        # including an exhausted rate budget, goes through DRF, which decides and words it.
        response = self.quick(request, kwargs["key"])
        return response if response is not None else super().dispatch(request, *args, **kwargs)

    @staticmethod
    def quick(request: HttpRequest, key: str) -> HttpResponse | None:
        if request.method != "POST":
            return None
        token = remembered_token(request)
        environment = token_environment(token)
        if token is None or environment is None or Scope.RESOLVE not in token.scopes:
            return None
        try:
            served = evaluate_one(request, environment, key)
        except DomainError:
            return None
        if _rate_limited(token) is not None:
            return None
        return quick_answer(served, "ofrep", encode_evaluation)

    @extend_schema(
        operation_id="ofrep_evaluate_flag",
        summary="OFREP: evaluate one flag",
        request=_REQUEST,
        responses={
            200: _SUCCESS,
            400: _failure(
                400,
                "TARGETING_KEY_MISSING",
                "Flag 'support-chat' splits traffic by targeting key; set the context's targetingKey.",
            ),
            404: _failure(
                404, "FLAG_NOT_FOUND", "No flag 'support-chat' is served in environment 'production'."
            ),
            **_ERRORS,
        },
        examples=[_OFREP_REQUEST, response_example("in the 10 % split", examples.OFREP_EVALUATION)],
    )
    def post(self, request: Request, key: str) -> Response:
        return Response(evaluation(evaluate_one(request, self.environment(request), key)))


def evaluate_one(request: HttpRequest | Request, environment: str, key: str) -> Served:
    """The single evaluation's answer; raises the OfrepError (or DomainError) that describes
    what is wrong with the request."""
    context = _body_and_context(request, key=key)
    snapshot = current_snapshot(environment)
    flag = snapshot.flags.get(key)
    if flag is None:
        raise OfrepError(
            404,
            "FLAG_NOT_FOUND",
            f"No flag '{key}' is served in environment '{snapshot.environment}'.",
            key=key,
        )
    return evaluated(snapshot, flag, context)


def encode_evaluation(served: Served) -> bytes:
    return JSONRenderer().render(evaluation(served))


class EvaluateFlagsView(OfrepView):
    @extend_schema(
        operation_id="ofrep_evaluate_flags",
        summary="OFREP: evaluate every flag of the token's environment",
        request=_REQUEST,
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER)],
        responses={
            200: inline_serializer(
                "OfrepBulkEvaluation",
                {
                    "flags": serializers.ListField(child=serializers.DictField()),
                    "metadata": serializers.DictField(),
                    "eventStreams": serializers.ListField(child=serializers.DictField()),
                },
            ),
            304: OpenApiResponse(description="Unchanged for this context"),
            400: OpenApiResponse(
                _REFUSED,
                description="The body or context is not valid",
                examples=[
                    OpenApiExample(
                        "not JSON",
                        {"errorCode": "PARSE_ERROR", "errorDetails": "The body is not valid JSON."},
                    )
                ],
            ),
            **_ERRORS,
        },
        examples=[
            _OFREP_REQUEST,
            response_example(
                "every flag",
                {
                    "flags": [
                        examples.OFREP_EVALUATION,
                        {
                            "key": "order-summary",
                            "reason": "DISABLED",
                            "variant": "disabled",
                            "metadata": {
                                "flag_state": "fs1:production:order-summary:-:-:-:1043",
                                "revision": 1043,
                                "environment": "production",
                            },
                        },
                    ],
                    "metadata": {"environment": "production", "revision": 1043},
                    "eventStreams": [
                        {
                            "type": "sse",
                            "url": "https://flags.acme.example/api/v1/environments/production/stream"
                            "?format=ofrep&ticket=eyJ0IjozLCJlIjoicHJvZHVjdGlvbiJ9:1xZtxo:3-sIvxwTNyaSLDE0lGO",
                            "inactivityDelaySec": 120,
                        }
                    ],
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        context = _body_and_context(request)
        environment = self.environment(request)
        snapshot = current_snapshot(environment)
        etag = bulk_etag(snapshot, context)
        if etag_matches(request.headers.get("If-None-Match"), etag):
            response = Response(status=304)
        else:
            flags = []
            for key in sorted(snapshot.flags):
                try:
                    flags.append(evaluate(snapshot, snapshot.flags[key], context))
                except OfrepError as error:
                    flags.append(error.as_dict())
            response = Response(
                {
                    "flags": flags,
                    "metadata": {"environment": snapshot.environment, "revision": snapshot.revision},
                    "eventStreams": [self.event_stream(request, environment)],
                }
            )
        response["ETag"] = etag
        return response

    @staticmethod
    def event_stream(request: Request, environment: str) -> dict[str, Any]:
        assert isinstance(request.auth, ApiToken)
        ticket = stream_ticket(request.auth, environment)
        return {
            "type": "sse",
            "url": f"{stream_url(request, environment)}?format=ofrep&ticket={ticket}",
            "inactivityDelaySec": EVENT_STREAM_INACTIVITY_SECONDS,
        }
