"""Judge calibration: each judge version's κ and standing; start a calibration; import labels."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.serializers import StrictSerializer
from evals.agreement import ACTING_MIN_KAPPA, ACTING_MIN_LABELS
from evals.api import examples
from evals.calibration_status import JudgeStatus, judge_status
from evals.lookups import get_eval_set, get_eval_set_version, get_judge
from evals.services import calibration
from evals.tasks import calibrate_judge
from flags.lookups import get_version
from flags.models import ConfigVersion


class JudgeVersionStatusSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    acting = serializers.BooleanField()
    state = serializers.CharField(help_text="acting or advisory")
    words = serializers.CharField()
    n_labels = serializers.IntegerField(allow_null=True)
    agreement = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True)
    computed_at = serializers.DateTimeField(allow_null=True)


@extend_schema_serializer(examples=[response_example("acting", examples.CALIBRATION)])
class CalibrationSerializer(serializers.Serializer[Any]):
    judge = serializers.CharField()
    labels = serializers.IntegerField()
    min_kappa = serializers.FloatField()
    min_labels = serializers.IntegerField()
    versions = JudgeVersionStatusSerializer(many=True)


@extend_schema_serializer(examples=[request_example("judge v2", {"version": 2})])
class CalibrateSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1)


@extend_schema_serializer(
    examples=[
        request_example(
            "human labels",
            {
                "file": '{"case": 1, "response": "It left the depot this morning.", "passed": true}\n',
                "eval_set": "support-golden",
                "version": 3,
            },
            media_type="multipart/form-data",
        )
    ]
)
class LabelsImportSerializer(StrictSerializer):
    file = serializers.FileField(
        help_text='JSON Lines: {"case": <position>, "response": <text>, "passed": <bool>}'
    )
    eval_set = serializers.CharField(max_length=100)
    version = serializers.IntegerField(min_value=1)


def status_row(status_: JudgeStatus) -> dict[str, Any]:
    found = status_.calibration
    return {
        "version": status_.version.number,
        "acting": status_.acting,
        "state": "acting" if status_.acting else "advisory",
        "words": status_.words,
        "n_labels": found.n_labels if found else None,
        "agreement": found.agreement if found else None,
        "kappa": found.kappa if found else None,
        "computed_at": found.computed_at if found else None,
    }


class CalibrationView(APIView):
    @extend_schema(responses=CalibrationSerializer)
    def get(self, request: Request, key: str) -> Response:
        judge = get_judge(key)
        versions = ConfigVersion.objects.for_flag(judge)
        return Response(
            {
                "judge": judge.key,
                "labels": judge.judge_labels.count(),
                "min_kappa": ACTING_MIN_KAPPA,
                "min_labels": ACTING_MIN_LABELS,
                "versions": [status_row(judge_status(version)) for version in versions],
            }
        )

    @extend_schema(
        request=CalibrateSerializer,
        responses={202: JudgeVersionStatusSerializer},
        examples=[response_example("queued", examples.CALIBRATION["versions"][0], status_codes=["202"])],
    )
    def post(self, request: Request, key: str) -> Response:
        """Judge the labels with a version (in the background) and store its calibration."""
        judge = get_judge(key)
        version = get_version(judge, validated_body(CalibrateSerializer, request)["version"])
        actor = actor_for_request(request).name
        transaction.on_commit(partial(calibrate_judge.delay, version.pk, actor))
        return Response(status_row(judge_status(version)), status=status.HTTP_202_ACCEPTED)


class LabelsImportView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": LabelsImportSerializer},
        responses={201: inline_serializer("LabelsImported", {"imported": serializers.IntegerField()})},
        examples=[response_example("imported", {"imported": 120})],
    )
    def post(self, request: Request, key: str) -> Response:
        judge = get_judge(key)
        data = validated_body(LabelsImportSerializer, request)
        version = get_eval_set_version(get_eval_set(data["eval_set"]), data["version"])
        count = calibration.import_labels(
            judge=judge, version=version, data=data["file"].read(), actor=actor_for_request(request)
        )
        return Response({"imported": count}, status=status.HTTP_201_CREATED)
