"""How the API documents itself beyond what drf-spectacular infers: errors and examples.

Every operation of the OpenAPI schema shows an example of its request body and of its success
answer, and the error body (`controlplane.errors`) of the refusals it can answer with:

- Examples of a shape live on its serializer, once: `@extend_schema_serializer(examples=[...])`
  (`request_only` on input serializers, `response_only` on output ones), so every operation
  that reads or answers that shape shows them. A view adds its own with
  `extend_schema(examples=[...])`; `DocumentedAutoSchema` keeps the serializer's beside them
  (drf-spectacular alone drops a serializer's examples as soon as the view names one).
- The common refusals are added to every operation by `DocumentedAutoSchema`: 401 and 403
  (the scope the method needs) when it takes a token, 404 when its path names an object, 400
  when it reads a body or query parameters, 413 when it reads a body. A refusal particular to an
  operation is declared beside its success answer: `responses={201: S, **refusals(Refusal(...))}`.

`tests/controlplane/test_schema.py` fails when an operation lacks an example and validates each
example against the schema it illustrates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry, get_override, is_list_serializer, is_serializer
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorItemSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(help_text="Where in the request, e.g. tools[2].input_schema.type")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer[Any]):
    """Every refusal: a stable `code` to branch on, a `detail` for people, and for validation the
    problems one by one. Some refusals add fields of their own (named in their examples)."""

    code = serializers.CharField(help_text="Stable; branch on this, never on the detail")
    detail = serializers.CharField(help_text="What is wrong and what to do, in words")
    errors = ErrorItemSerializer(many=True, required=False)  # type: ignore[assignment]


def request_example(name: str, value: Any, **options: Any) -> OpenApiExample:
    """An example of a request body (an input serializer's, or a view's)."""
    return OpenApiExample(name, value, request_only=True, **options)


def response_example(name: str, value: Any, **options: Any) -> OpenApiExample:
    """An example of a success answer (an output serializer's, or a view's); a list view shows
    it as one item of a page."""
    return OpenApiExample(name, value, response_only=True, **options)


class ErrorSchema(OpenApiSerializerExtension):
    """The error body is open: a refusal may add fields (`rules_tag`, `used_by`, `unknown_flags`)."""

    target_class = ErrorSerializer

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": True}


@dataclass(frozen=True)
class Refusal:
    """One documented error answer of an operation: its status and the body it sends."""

    status: int
    code: str
    detail: str
    errors: tuple[tuple[str, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.errors:
            document["errors"] = [{"path": path, "message": message} for path, message in self.errors]
        return {**document, **self.extra}

    def example(self) -> OpenApiExample:
        return OpenApiExample(self.code, self.body(), response_only=True, status_codes=[str(self.status)])


STATUS_DESCRIPTIONS = {
    400: "Refused: the request is not valid (nothing changed)",
    401: "No valid API token or session",
    403: "The role or token does not allow this",
    404: "No such object",
    409: "Refused: the current state does not allow this (nothing changed)",
    412: "Refused: the state changed since the caller read it (nothing changed)",
    413: "Refused: the request is too large",
}


def refusals(*documented: Refusal) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`, one per status with all its examples."""
    by_status: dict[int, list[Refusal]] = defaultdict(list)
    for refusal in documented:
        by_status[refusal.status].append(refusal)
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description=STATUS_DESCRIPTIONS.get(status, "Refused"),
            examples=[refusal.example() for refusal in found],
        )
        for status, found in by_status.items()
    }


NOT_AUTHENTICATED = Refusal(401, "not_authenticated", "Authentication credentials were not provided.")
TOO_LARGE = Refusal(413, "too_large", "The request body is larger than this server accepts.")
INVALID_PAGINATION = Refusal(
    400,
    "invalid_pagination",
    "The 'limit' query parameter must be a whole number from 1 to 1000.",
    errors=(("limit", "Must be a whole number from 1 to 1000."),),
)
# What a 404 says, by the collection the path's first parameter looks up (each app's lookups);
# objects looked up with get_object_or_404 answer DRF's plain "Not found.".
NOT_FOUND_DETAILS = {
    "flags": "No flag with key 'support-chat'.",
    "environments": "No environment with key 'production'.",
    "segments": "No segment with key 'beta-testers'.",
    "eval-sets": "No eval set with key 'support-golden'.",
    "eval-runs": "No eval run with id 418.",
    "judges": "No flag with key 'support-judge'.",
    "rollouts": "No rollout 12.",
    "scheduled-changes": "No scheduled change 31.",
}


def not_found(path: str) -> Refusal:
    collection = path.removeprefix("/api/v1/").split("/", 1)[0]
    return Refusal(404, "not_found", NOT_FOUND_DETAILS.get(collection, "Not found."))


class DocumentedAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the common refusals and the serializers' examples."""

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(
            path, path_regex, path_prefix, method, registry
        )
        if operation is None:
            return None
        responses = operation["responses"]
        for refusal in self._common_refusals(operation):
            code = str(refusal.status)
            if code not in responses:
                responses[code] = self._get_response_for_code(refusals(refusal)[refusal.status], code)
        return operation

    def _common_refusals(self, operation: dict[str, Any]) -> list[Refusal]:
        found = []
        body = operation.get("requestBody")
        parameters = operation.get("parameters", [])
        if body is not None:
            found.append(self._invalid_body(body))
        elif any(parameter["in"] == "query" for parameter in parameters):
            found.append(INVALID_PAGINATION if self._paginated() else self._invalid_query(parameters))
        if operation.get("security") and {} not in operation["security"]:
            found += [NOT_AUTHENTICATED, self._forbidden()]
        if any(parameter["in"] == "path" for parameter in parameters):
            found.append(not_found(self.path))
        if body is not None:
            found.append(TOO_LARGE)
        return found

    def _paginated(self) -> bool:
        return self._is_list_view() and self._get_paginator() is not None

    def _invalid_body(self, body: dict[str, Any]) -> Refusal:
        """DRF's answer to a body that lacks the first required field of the operation's schema."""
        required = [name for media in body["content"].values() for name in self._required(media["schema"])]
        if not required:
            return Refusal(
                400, "malformed_request", "JSON parse error - Expecting value: line 1 column 1 (char 0)"
            )
        return Refusal(
            400,
            "invalid",
            "The request is not valid.",
            errors=((required[0], "This field is required."),),
        )

    def _required(self, schema: dict[str, Any]) -> list[str]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.registry[(name, "schemas")].schema
        required: list[str] = schema.get("required", [])
        return required

    @staticmethod
    def _invalid_query(parameters: list[dict[str, Any]]) -> Refusal:
        name = next(parameter["name"] for parameter in parameters if parameter["in"] == "query")
        return Refusal(
            400,
            "invalid",
            f"The '{name}' query parameter is not valid.",
            errors=((name, "Not a valid value."),),
        )

    def _forbidden(self) -> Refusal:
        # Imported here: controlplane.auth loads models, which the schema settings must not need.
        from controlplane.auth import declared_scope

        scope = declared_scope(self.view, self.method)
        return Refusal(
            403,
            "forbidden",
            f"This action needs the '{scope}' scope, which your role or token does not have."
            if scope
            else "Your role or token does not allow this action.",
        )

    def _get_examples(
        self,
        serializer: Any,
        direction: str,
        media_type: str,
        status_code: str | None = None,
        extras: list[OpenApiExample] | None = None,
    ) -> dict[str, Any]:
        # drf-spectacular reads a serializer's examples only when the view names none; keep both.
        if [example for example in self.get_examples() if not example.parameter_only]:
            shape = serializer.child if is_list_serializer(serializer) else serializer
            if is_serializer(shape):
                extras = [*(extras or []), *_with_status_codes(get_override(shape, "examples", []))]
        return super()._get_examples(serializer, direction, media_type, status_code, extras)


def _with_status_codes(examples: list[OpenApiExample]) -> list[OpenApiExample]:
    """Serializer examples passed on as extras: pinned to the success codes a serializer example
    means, since an extra without codes would stand for whatever status it is rendered under."""
    pinned = []
    for example in examples:
        if not example.status_codes:
            example = OpenApiExample(
                example.name,
                example.value,
                summary=example.summary,
                description=example.description,
                request_only=example.request_only,
                response_only=example.response_only,
                media_type=example.media_type,
                status_codes=["200", "201", "202"],
            )
        pinned.append(example)
    return pinned
