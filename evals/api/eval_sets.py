"""Eval sets: list and create them, their versions and cases, import and export files."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.errors import InvalidInput
from controlplane.inputs import validated_body
from controlplane.serializers import StrictSerializer
from evals import case_files
from evals.api import examples
from evals.eval_set_reads import eval_sets_with_latest, export_cases
from evals.lookups import get_eval_set, get_eval_set_version
from evals.models import EvalCase, EvalSet, EvalSetVersion
from evals.services import eval_sets
from flags.lookups import get_flag
from flags.models import Surface


@extend_schema_serializer(examples=[response_example("support-golden", examples.EVAL_SET)])
class EvalSetSerializer(serializers.ModelSerializer[EvalSet]):
    flag = serializers.CharField(source="flag.key", allow_null=True, default=None)
    latest_version = serializers.IntegerField(source="latest_number", allow_null=True, default=None)

    class Meta:
        model = EvalSet
        fields = ["key", "description", "surface", "flag", "latest_version", "created_at"]


@extend_schema_serializer(
    examples=[
        request_example(
            "support-golden",
            {key: examples.EVAL_SET[key] for key in ("key", "description", "surface", "flag")},
        )
    ]
)
class EvalSetCreateSerializer(StrictSerializer):
    key = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    surface = serializers.ChoiceField(choices=Surface.choices, required=False, allow_null=True, default=None)
    flag = serializers.CharField(required=False, allow_null=True, default=None, max_length=100)


@extend_schema_serializer(examples=[response_example("v3", examples.EVAL_SET_VERSION)])
class EvalSetVersionSerializer(serializers.ModelSerializer[EvalSetVersion]):
    eval_set = serializers.CharField(source="eval_set.key")
    parent = serializers.IntegerField(source="parent.number", allow_null=True, default=None)  # type: ignore[assignment]
    author = serializers.CharField(source="author_name")

    class Meta:
        model = EvalSetVersion
        fields = [
            "eval_set",
            "number",
            "parent",
            "source",
            "message",
            "author",
            "case_count",
            "content_hash",
            "scorers",
            "created_at",
        ]


@extend_schema_serializer(
    examples=[
        request_example(
            "one case",
            {
                "cases": [examples.CASE],
                "scorers": examples.SCORERS,
                "message": "Tracking questions",
                "parent": 2,
            },
        )
    ]
)
class EvalSetVersionCreateSerializer(StrictSerializer):
    cases = serializers.ListField(child=serializers.JSONField(), allow_empty=True)
    scorers = serializers.JSONField(required=False, allow_null=True, default=None)
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)  # type: ignore[assignment]


@extend_schema_serializer(
    examples=[
        request_example(
            "JSON Lines",
            {
                "file": case_files.to_jsonl([examples.CASE]),
                "format": "jsonl",
                "message": "40 refund cases from November's tickets",
            },
            media_type="multipart/form-data",
        )
    ]
)
class EvalSetImportSerializer(StrictSerializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(
        choices=case_files.FORMATS, required=False, allow_null=True, default=None
    )
    scorers = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="JSON list of scorer specs; empty keeps the latest's",
    )
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


@extend_schema_serializer(
    examples=[
        response_example(
            "a tracking question",
            {
                "position": 1,
                "case_hash": examples.RUN_CASE["case_hash"],
                **examples.CASE,
                "origin": "tickets-2026-11.jsonl:1",
            },
        )
    ]
)
class EvalCaseSerializer(serializers.ModelSerializer[EvalCase]):
    class Meta:
        model = EvalCase
        fields = ["position", "case_hash", "input", "reference", "assertions", "tags", "origin"]


class EvalSetsView(ListAPIView[EvalSet]):
    serializer_class = EvalSetSerializer

    def get_queryset(self) -> QuerySet[EvalSet]:
        return eval_sets_with_latest()

    @extend_schema(request=EvalSetCreateSerializer, responses={201: EvalSetSerializer})
    def post(self, request: Request) -> Response:
        data = validated_body(EvalSetCreateSerializer, request)
        flag = get_flag(data["flag"]) if data["flag"] else None
        eval_set = eval_sets.create_eval_set(
            key=data["key"],
            description=data["description"],
            surface=data["surface"],
            flag=flag,
            actor=actor_for_request(request),
        )
        return Response(EvalSetSerializer(eval_set).data, status=status.HTTP_201_CREATED)


class EvalSetDetailView(APIView):
    @extend_schema(responses=EvalSetSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(EvalSetSerializer(eval_sets_with_latest().get(pk=get_eval_set(key).pk)).data)


class VersionsView(ListAPIView[EvalSetVersion]):
    serializer_class = EvalSetVersionSerializer

    def get_queryset(self) -> QuerySet[EvalSetVersion]:
        eval_set = get_eval_set(self.kwargs["key"])
        return EvalSetVersion.objects.for_set(eval_set).select_related("eval_set", "parent")

    @extend_schema(request=EvalSetVersionCreateSerializer, responses={201: EvalSetVersionSerializer})
    def post(self, request: Request, key: str) -> Response:
        eval_set = get_eval_set(key)
        data = validated_body(EvalSetVersionCreateSerializer, request)
        version = eval_sets.create_eval_set_version(
            eval_set=eval_set,
            cases=data["cases"],
            scorers=data["scorers"],
            message=data["message"],
            parent=get_eval_set_version(eval_set, data["parent"]) if data["parent"] else None,
            actor=actor_for_request(request),
        )
        return Response(EvalSetVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(responses=EvalSetVersionSerializer)
    def get(self, request: Request, key: str, number: int) -> Response:
        return Response(EvalSetVersionSerializer(get_eval_set_version(get_eval_set(key), number)).data)


class CasesView(ListAPIView[EvalCase]):
    serializer_class = EvalCaseSerializer

    def get_queryset(self) -> QuerySet[EvalCase]:
        version = get_eval_set_version(get_eval_set(self.kwargs["key"]), self.kwargs["number"])
        return version.cases.order_by("position")


class ImportView(APIView):
    """A new version from a JSON Lines or CSV file (multipart); errors name each line."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": EvalSetImportSerializer}, responses={201: EvalSetVersionSerializer}
    )
    def post(self, request: Request, key: str) -> Response:
        eval_set = get_eval_set(key)
        data = validated_body(EvalSetImportSerializer, request)
        version = eval_sets.import_eval_set_version(
            eval_set=eval_set,
            data=data["file"].read(),
            file_format=data["format"] or guess_format(data["file"].name),
            scorers=parse_scorers(data["scorers"]),
            message=data["message"],
            actor=actor_for_request(request),
        )
        return Response(EvalSetVersionSerializer(version).data, status=status.HTTP_201_CREATED)


def guess_format(filename: str | None) -> str:
    return case_files.CSV if (filename or "").lower().endswith(".csv") else case_files.JSONL


def parse_scorers(text: str) -> Any:
    """A scorer set given as JSON text (forms and multipart bodies); None keeps the latest's."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidInput(
            "The scorers are not valid JSON.",
            code="eval_set_invalid",
            errors=[{"path": "scorers", "message": f"Not valid JSON: {error.args[0]}."}],
        ) from None


class ExportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=list(case_files.FORMATS), description="jsonl (default) or csv"
            )
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                examples=[response_example("JSON Lines", case_files.to_jsonl([examples.CASE]))],
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                examples=[response_example("CSV", case_files.to_csv([examples.CASE]))],
            ),
        },
    )
    def get(self, request: Request, key: str, number: int) -> HttpResponse:
        version = get_eval_set_version(get_eval_set(key), number)
        return export_response(version, request.query_params.get("format") or case_files.JSONL)


def export_response(version: EvalSetVersion, file_format: str) -> HttpResponse:
    if file_format not in case_files.FORMATS:
        raise InvalidInput(
            f"Unknown format '{file_format}'.",
            errors=[{"path": "format", "message": f"Use one of: {', '.join(case_files.FORMATS)}."}],
        )
    content_type = "text/csv" if file_format == case_files.CSV else "application/x-ndjson"
    response = HttpResponse(export_cases(version, file_format), content_type=f"{content_type}; charset=utf-8")
    filename = f"{version.eval_set.key}-v{version.number}.{file_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
