"""REST API of segments: list, create, read, update, delete."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.serializers import StrictSerializer
from flags import services
from flags.api import examples
from flags.lookups import get_segment
from flags.models import Segment


@extend_schema_serializer(examples=[response_example("beta testers", examples.SEGMENT)])
class SegmentSerializer(serializers.ModelSerializer[Segment]):
    class Meta:
        model = Segment
        fields = ["key", "name", "description", "constraints", "created_at", "updated_at"]


@extend_schema_serializer(
    examples=[
        request_example(
            "beta testers",
            {key: examples.SEGMENT[key] for key in ("key", "name", "description", "constraints")},
        )
    ]
)
class SegmentCreateSerializer(StrictSerializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    constraints = serializers.JSONField(required=False, default=list)  # type: ignore[arg-type]


@extend_schema_serializer(
    examples=[
        request_example(
            "add a plan",
            {
                "constraints": [
                    {"contextName": "plan", "operator": "IN", "values": ["beta", "design-partner"]}
                ],
                "reason": "Design partners join the beta",
            },
        )
    ]
)
class SegmentUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    constraints = serializers.JSONField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class SegmentsView(ListAPIView[Segment]):
    serializer_class = SegmentSerializer
    queryset = Segment.objects.order_by("key")

    @extend_schema(request=SegmentCreateSerializer, responses={201: SegmentSerializer})
    def post(self, request: Request) -> Response:
        data = validated_body(SegmentCreateSerializer, request)
        segment = services.create_segment(actor=actor_for_request(request), **data)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(APIView):
    @extend_schema(responses=SegmentSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(SegmentSerializer(get_segment(key)).data)

    @extend_schema(request=SegmentUpdateSerializer, responses=SegmentSerializer)
    def patch(self, request: Request, key: str) -> Response:
        segment = get_segment(key)
        data = validated_body(SegmentUpdateSerializer, request)
        segment = services.update_segment(segment=segment, actor=actor_for_request(request), **data)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key: str) -> Response:
        services.delete_segment(segment=get_segment(key), actor=actor_for_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
