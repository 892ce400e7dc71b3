"""REST API of the flags app: thin views over flags.services and flags.lookups."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.auth import actor_for_request
from controlplane.errors import InvalidInput
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags import services
from flags.diff import diff_configs
from flags.lookups import get_environment, get_flag, get_segment, get_version
from flags.models import (
    ClaudeModel,
    ConfigVersion,
    Environment,
    Flag,
    FlagState,
    ModelPrice,
    Segment,
    Split,
    Surface,
)
from flags.targeting import control_band, try_context
from flags.validation import CONFIG_SCHEMA


class EnvironmentSerializer(serializers.ModelSerializer[Environment]):
    class Meta:
        model = Environment
        fields = ["key", "name", "revision", "created_at"]


class EnvironmentCreateSerializer(StrictSerializer):
    key = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class EnvironmentsView(ListAPIView[Environment]):
    serializer_class = EnvironmentSerializer
    queryset = Environment.objects.by_key()

    @extend_schema(request=EnvironmentCreateSerializer, responses={201: EnvironmentSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(EnvironmentCreateSerializer, request)
        environment = services.create_environment(
            key=data["key"], name=data["name"], actor=actor_for_request(request)
        )
        return Response(EnvironmentSerializer(environment).data, status=status.HTTP_201_CREATED)


def _validated(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class FlagStateSerializer(serializers.ModelSerializer[FlagState]):
    environment = serializers.CharField(source="environment.key")
    revision = serializers.IntegerField(source="environment.revision")
    serving_version = serializers.IntegerField(source="serving_version.number", allow_null=True, default=None)

    class Meta:
        model = FlagState
        fields = ["environment", "enabled", "serving_version", "revision", "updated_at"]


class FlagSerializer(serializers.ModelSerializer[Flag]):
    archived = serializers.BooleanField(source="is_archived")
    environments = FlagStateSerializer(source="states", many=True)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Flag
        fields = [
            "key",
            "name",
            "description",
            "surface",
            "owner",
            "stickiness",
            "archived",
            "created_at",
            "archived_at",
            "latest_version",
            "environments",
        ]

    def get_latest_version(self, flag: Flag) -> int | None:
        latest: int | None = getattr(flag, "latest_version_number", None)
        return latest


class FlagCreateSerializer(StrictSerializer):
    key = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    surface = serializers.ChoiceField(choices=Surface.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    stickiness = serializers.CharField(max_length=100, required=False, default="targetingKey")


class FlagUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    surface = serializers.ChoiceField(choices=Surface.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True)
    stickiness = serializers.CharField(max_length=100, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class FlagsView(ListAPIView[Flag]):
    serializer_class = FlagSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Match key, name or owner"),
            OpenApiParameter("archived", bool, description="Include archived flags"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Flag]:
        flags = Flag.objects.with_states().search(self.request.query_params.get("search", "").strip())
        if self.request.query_params.get("archived", "").lower() not in {"1", "true", "yes"}:
            flags = flags.active()
        return flags

    @extend_schema(request=FlagCreateSerializer, responses={201: FlagSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(FlagCreateSerializer, request)
        flag = services.create_flag(actor=actor_for_request(request), **data)
        return Response(
            FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data, status=status.HTTP_201_CREATED
        )


class FlagDetailView(APIView):
    @extend_schema(responses=FlagSerializer)
    def get(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        return Response(FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data)

    @extend_schema(request=FlagUpdateSerializer, responses=FlagSerializer)
    def patch(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = _validated(FlagUpdateSerializer, request)
        reason = data.pop("reason")
        services.update_flag(flag=flag, changes=data, actor=actor_for_request(request), reason=reason)
        return Response(FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data)


class FlagArchiveView(APIView):
    @extend_schema(request=ReasonSerializer, responses=FlagSerializer)
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = _validated(ReasonSerializer, request)
        services.archive_flag(flag=flag, actor=actor_for_request(request), reason=data["reason"])
        return Response(FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data)


class IssueSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField()


class VersionSerializer(serializers.ModelSerializer[ConfigVersion]):
    flag = serializers.CharField(source="flag.key")
    # Declared fields shadow Serializer/Field attributes only in the type stubs; DRF's metaclass
    # moves them into _declared_fields.
    parent = serializers.IntegerField(source="parent.number", allow_null=True, default=None)  # type: ignore[assignment]
    author = serializers.CharField(source="author_name")
    warnings = IssueSerializer(many=True)

    class Meta:
        model = ConfigVersion
        fields = [
            "flag",
            "number",
            "variant",
            "content_hash",
            "parent",
            "author",
            "message",
            "warnings",
            "created_at",
            "content",
        ]


class VersionCreateSerializer(StrictSerializer):
    content = serializers.JSONField()
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)  # type: ignore[assignment]


class ContentSerializer(StrictSerializer):
    content = serializers.JSONField()


class ValidationResultSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    errors = IssueSerializer(many=True)  # type: ignore[assignment]
    warnings = IssueSerializer(many=True)


class VersionsView(ListAPIView[ConfigVersion]):
    serializer_class = VersionSerializer

    def get_queryset(self) -> QuerySet[ConfigVersion]:
        flag = get_flag(self.kwargs["key"])
        return ConfigVersion.objects.for_flag(flag).select_related("flag", "parent")

    @extend_schema(request=VersionCreateSerializer, responses={201: VersionSerializer})
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = _validated(VersionCreateSerializer, request)
        created = services.create_version(
            flag=flag,
            content=data["content"],
            message=data["message"],
            parent_number=data["parent"],
            actor=actor_for_request(request),
        )
        return Response(VersionSerializer(created.version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(responses=VersionSerializer)
    def get(self, request: Request, key: str, number: int) -> Response:
        return Response(VersionSerializer(get_version(get_flag(key), number)).data)


class ValidateView(APIView):
    """Dry run: validate content for this flag without saving anything."""

    required_scopes = {"POST": "read"}

    @extend_schema(request=ContentSerializer, responses=ValidationResultSerializer)
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = _validated(ContentSerializer, request)
        result = services.validate_content(flag=flag, content=data["content"])
        return Response(
            {
                "ok": result.ok,
                "errors": [issue.as_dict() for issue in result.errors],
                "warnings": [issue.as_dict() for issue in result.warnings],
            }
        )


def _int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        raise InvalidInput(
            f"The '{name}' query parameter is required.", errors=[{"path": name, "message": "Required."}]
        )
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(
            f"The '{name}' query parameter must be a version number.",
            errors=[{"path": name, "message": "Must be a whole number."}],
        ) from None
    if value < 1:
        raise InvalidInput(
            f"'{name}' must be 1 or more.", errors=[{"path": name, "message": "Must be 1 or more."}]
        )
    return value


class DiffView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True, description="Version number to compare from"),
            OpenApiParameter("to", int, required=True, description="Version number to compare to"),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        old = get_version(flag, _int_param(request, "from"))
        new = get_version(flag, _int_param(request, "to"))
        diff = diff_configs(old.content, new.content)
        return Response({"flag": flag.key, "from": old.number, "to": new.number, **diff.as_dict()})


class PublishSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class EnvironmentFlagView(APIView):
    environment_url_kwarg = "env"


class PublishView(EnvironmentFlagView):
    @extend_schema(request=PublishSerializer, responses=FlagStateSerializer)
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(PublishSerializer, request)
        state = services.publish_version(
            flag=flag,
            environment=environment,
            number=data["version"],
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(FlagStateSerializer(_fresh_state(state)).data)


def _fresh_state(state: FlagState) -> FlagState:
    return FlagState.objects.select_related("environment", "serving_version").get(pk=state.pk)


class EnableView(EnvironmentFlagView):
    enabled = True

    @extend_schema(request=ReasonSerializer, responses=FlagStateSerializer)
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(ReasonSerializer, request)
        state = services.set_flag_enabled(
            flag=flag,
            environment=environment,
            enabled=self.enabled,
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(FlagStateSerializer(_fresh_state(state)).data)


class DisableView(EnableView):
    enabled = False


class PriceSerializer(serializers.ModelSerializer[ModelPrice]):
    class Meta:
        model = ModelPrice
        fields = ["token_type", "tier", "context", "usd_per_mtok", "effective_from"]


class ModelSerializer(serializers.ModelSerializer[ClaudeModel]):
    id = serializers.CharField(source="model_id")
    prices = PriceSerializer(many=True)
    days_to_retirement = serializers.SerializerMethodField()

    class Meta:
        model = ClaudeModel
        fields = [
            "id",
            "display_name",
            "line",
            "lifecycle",
            "deprecated_at",
            "retires_at",
            "days_to_retirement",
            "replacement",
            "max_tokens",
            "context_window",
            "capabilities",
            "source",
            "synced_at",
            "prices",
        ]

    def get_days_to_retirement(self, model: ClaudeModel) -> int | None:
        if model.retires_at is None:
            return None
        return (model.retires_at - timezone.now().date()).days


class ModelsView(ListAPIView[ClaudeModel]):
    serializer_class = ModelSerializer
    queryset = ClaudeModel.objects.with_prices()
    pagination_class = None


class ConfigSchemaView(APIView):
    """The JSON Schema of config content."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(CONFIG_SCHEMA)


# Targeting: segments, rules, splits, and trying a context. Constraints and segment references
# are JSON here; the services check them with the engine's strict compile, which names the path.
# (The stubs type a JSONField's default as a mapping; a list default is just as valid JSON.)


class SegmentSerializer(serializers.ModelSerializer[Segment]):
    class Meta:
        model = Segment
        fields = ["key", "name", "description", "constraints", "created_at", "updated_at"]


class SegmentCreateSerializer(StrictSerializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    constraints = serializers.JSONField(required=False, default=list)  # type: ignore[arg-type]


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
        data = _validated(SegmentCreateSerializer, request)
        segment = services.create_segment(actor=actor_for_request(request), **data)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(APIView):
    @extend_schema(responses=SegmentSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(SegmentSerializer(get_segment(key)).data)

    @extend_schema(request=SegmentUpdateSerializer, responses=SegmentSerializer)
    def patch(self, request: Request, key: str) -> Response:
        segment = get_segment(key)
        data = _validated(SegmentUpdateSerializer, request)
        segment = services.update_segment(segment=segment, actor=actor_for_request(request), **data)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, key: str) -> Response:
        services.delete_segment(segment=get_segment(key), actor=actor_for_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    constraints = serializers.JSONField()
    segments = serializers.ListField(child=serializers.CharField())
    version = serializers.IntegerField()
    description = serializers.CharField()


class RulesSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    revision = serializers.IntegerField()
    rules = RuleSerializer(many=True)


class RuleCreateSerializer(StrictSerializer):
    constraints = serializers.JSONField(required=False, default=list)  # type: ignore[arg-type]
    segments = serializers.JSONField(required=False, default=list)  # type: ignore[arg-type]
    version = serializers.IntegerField(min_value=1)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    position = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)


class RuleUpdateSerializer(StrictSerializer):
    constraints = serializers.JSONField(required=False)
    segments = serializers.JSONField(required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)


class RuleMoveSerializer(StrictSerializer):
    to = serializers.IntegerField(min_value=0)


def _rules_document(flag: Flag, environment: Environment) -> dict[str, Any]:
    """The rules in priority order, each with its index (the address of the rule's endpoints)."""
    environment.refresh_from_db(fields=["revision"])
    state = FlagState.objects.filter(flag=flag, environment=environment).only("rules").first()
    rules = state.rules if state else []
    return {
        "flag": flag.key,
        "environment": environment.key,
        "revision": environment.revision,
        "rules": [{"index": index, "description": "", **rule} for index, rule in enumerate(rules)],
    }


class RulesView(EnvironmentFlagView):
    """Targeting rules of a flag in an environment, first match wins."""

    @extend_schema(responses=RulesSerializer)
    def get(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        return Response(RulesSerializer(_rules_document(flag, environment)).data)

    @extend_schema(request=RuleCreateSerializer, responses={201: RulesSerializer})
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(RuleCreateSerializer, request)
        services.add_rule(flag=flag, environment=environment, actor=actor_for_request(request), **data)
        document = RulesSerializer(_rules_document(flag, environment)).data
        return Response(document, status=status.HTTP_201_CREATED)


class RuleDetailView(EnvironmentFlagView):
    """One rule by its index; an index past the last rule is 404."""

    @extend_schema(request=RuleUpdateSerializer, responses=RulesSerializer)
    def patch(self, request: Request, key: str, env: str, index: int) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(RuleUpdateSerializer, request)
        services.update_rule(
            flag=flag, environment=environment, index=index, actor=actor_for_request(request), **data
        )
        return Response(RulesSerializer(_rules_document(flag, environment)).data)

    @extend_schema(responses=RulesSerializer)
    def delete(self, request: Request, key: str, env: str, index: int) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        services.remove_rule(
            flag=flag, environment=environment, index=index, actor=actor_for_request(request)
        )
        return Response(RulesSerializer(_rules_document(flag, environment)).data)


class RuleMoveView(EnvironmentFlagView):
    @extend_schema(request=RuleMoveSerializer, responses=RulesSerializer)
    def post(self, request: Request, key: str, env: str, index: int) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(RuleMoveSerializer, request)
        services.move_rule(
            flag=flag,
            environment=environment,
            index=index,
            to_index=data["to"],
            actor=actor_for_request(request),
        )
        return Response(RulesSerializer(_rules_document(flag, environment)).data)


class ActiveSplitSerializer(serializers.ModelSerializer[Split]):
    id = serializers.CharField(source="split_id")
    candidate = serializers.IntegerField(source="candidate.number")
    control = serializers.SerializerMethodField()

    class Meta:
        model = Split
        fields = ["id", "candidate", "weight", "seed", "control", "created_at", "updated_at"]

    def get_control(self, split: Split) -> dict[str, int] | None:
        """The control arm's buckets, [from, to): served the baseline, compared with the candidate."""
        band = control_band(split.weight)
        return {"from": band[0], "to": band[1]} if band else None


class SplitDocumentSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    serving_version = serializers.IntegerField(allow_null=True)
    split = ActiveSplitSerializer(allow_null=True)


class SplitSetSerializer(StrictSerializer):
    candidate = serializers.IntegerField(min_value=1)
    weight = serializers.IntegerField(min_value=0, max_value=10000, help_text="Basis points (100 = 1 %)")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _split_document(flag: Flag, environment: Environment) -> dict[str, Any]:
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    split = (
        Split.objects.active().select_related("candidate").filter(flag=flag, environment=environment).first()
    )
    return {
        "flag": flag.key,
        "environment": environment.key,
        "serving_version": state.serving_version.number if state and state.serving_version else None,
        "split": split,
    }


class SplitView(EnvironmentFlagView):
    """The weighted split between the serving version and a candidate."""

    @extend_schema(responses=SplitDocumentSerializer)
    def get(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        return Response(SplitDocumentSerializer(_split_document(flag, environment)).data)

    @extend_schema(request=SplitSetSerializer, responses=SplitDocumentSerializer)
    def put(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(SplitSetSerializer, request)
        services.set_split(flag=flag, environment=environment, actor=actor_for_request(request), **data)
        return Response(SplitDocumentSerializer(_split_document(flag, environment)).data)

    @extend_schema(request=ReasonSerializer, responses={204: None})
    def delete(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(ReasonSerializer, request)
        services.clear_split(flag=flag, environment=environment, actor=actor_for_request(request), **data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrySerializer(StrictSerializer):
    # A DictField, not a JSONField: it does not re-encode the value, which deep nesting breaks.
    # The name shadows Serializer.context only in the stubs: DRF's metaclass moves declared fields.
    context = serializers.DictField(help_text="An evaluation context: a JSON object of at most 64 KiB")  # type: ignore[assignment]


class TriedContextSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    revision = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    arm = serializers.CharField(allow_null=True)
    split_id = serializers.CharField(allow_null=True)
    rule_index = serializers.IntegerField(allow_null=True)
    rule = serializers.JSONField(allow_null=True)
    bucket = serializers.IntegerField(allow_null=True)
    unit = serializers.CharField(allow_null=True)
    content = serializers.JSONField(allow_null=True)


class TryView(EnvironmentFlagView):
    """What a context gets from the flag's current targeting and split, and why (nothing is saved)."""

    required_scopes = {"POST": "read"}

    @extend_schema(request=TrySerializer, responses=TriedContextSerializer)
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = _validated(TrySerializer, request)
        tried = try_context(flag=flag, environment=environment, context=data["context"])
        return Response(TriedContextSerializer(tried.as_dict()).data)
