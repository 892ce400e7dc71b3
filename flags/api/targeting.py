"""Targeting: segments, a flag's rules and split in an environment, and trying a context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import REASON_PARAMETER, delete_reason, validated_body
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags import services
from flags.api import examples
from flags.api.scoping import EnvironmentFlagView
from flags.lookups import get_environment, get_flag
from flags.models import Environment, Flag, FlagState, Split, SplitArm
from flags.targeting import control_band, rules_tag, try_context

# Targeting: rules, splits, and trying a context (segments: flags.api.segments). Constraints and
# segment references are JSON here; the services check them with the engine's strict compile,
# which names the path.
# (The stubs type a JSONField's default as a mapping; a list default is just as valid JSON.)


class RuleSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    constraints = serializers.JSONField()
    segments = serializers.ListField(child=serializers.CharField())
    version = serializers.IntegerField()
    description = serializers.CharField()
    everyone = serializers.BooleanField(help_text="The rule has no conditions and serves every context")


@extend_schema_serializer(examples=[response_example("two rules", examples.RULES)])
class RulesSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    revision = serializers.IntegerField()
    rules_tag = serializers.CharField(help_text="The rules' fingerprint, also the ETag: send it as If-Match")
    rules = RuleSerializer(many=True)


@extend_schema_serializer(
    examples=[
        request_example(
            "enterprise plans first",
            {
                "constraints": [examples.ENTERPRISE_CONSTRAINT],
                "version": 8,
                "description": "Enterprise plans get the candidate first",
                "position": 0,
                "reason": "Enterprise pilot agreed with CX (CHG-4480)",
            },
        ),
        request_example("a segment", {"segments": ["beta-testers"], "version": 8, "reason": "Beta cohort"}),
    ]
)
class RuleCreateSerializer(ReasonSerializer):
    constraints = serializers.JSONField(required=False, default=list)  # type: ignore[arg-type]
    segments = serializers.JSONField(required=False, default=list)  # type: ignore[arg-type]
    version = serializers.IntegerField(min_value=1)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    position = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)
    everyone = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Required (true) for a rule without constraints or segments, which serves every context",
    )


@extend_schema_serializer(
    examples=[request_example("serve v7 again", {"version": 7, "reason": "Rolling the pilot back: INC-2291"})]
)
class RuleUpdateSerializer(ReasonSerializer):
    constraints = serializers.JSONField(required=False)
    segments = serializers.JSONField(required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    everyone = serializers.BooleanField(required=False)


@extend_schema_serializer(
    examples=[request_example("to the top", {"to": 0, "reason": "Beta testers take precedence"})]
)
class RuleMoveSerializer(ReasonSerializer):
    to = serializers.IntegerField(min_value=0, source="to_index")


RULES_CHANGED = Refusal(
    412,
    "rules_changed",
    "The rules of 'support-chat' in 'production' changed since you read them; read them again and retry.",
    extra={"rules_tag": "a41f09b7c2d3e815"},
)

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="The rules' ETag as read: if they have changed since, 412 rules_changed and no change",
)


def _expected_rules(request: Request) -> str | None:
    """The rules tag the caller read (`If-Match`), or None: change the rules as they are now."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    return header.removeprefix("W/").strip('"')


def _rules_response(flag: Flag, environment: Environment, status_code: int = status.HTTP_200_OK) -> Response:
    """The rules in priority order, each with its index (the address of the rule's endpoints),
    with their tag as the ETag."""
    environment.refresh_from_db(fields=["revision"])
    state = FlagState.objects.filter(flag=flag, environment=environment).only("rules").first()
    rules = state.rules if state else []
    tag = rules_tag(rules)
    document = {
        "flag": flag.key,
        "environment": environment.key,
        "revision": environment.revision,
        "rules_tag": tag,
        "rules": [
            {"index": index, "description": "", "everyone": False, **rule} for index, rule in enumerate(rules)
        ],
    }
    return Response(RulesSerializer(document).data, status=status_code, headers={"ETag": f'"{tag}"'})


def _changed_rules(
    request: Request,
    key: str,
    env: str,
    change: Callable[..., FlagState],
    *,
    body: type[serializers.Serializer[Any]] | None = None,
    status_code: int = status.HTTP_200_OK,
    **fields: Any,
) -> Response:
    """One change to the rules, by the caller and against the rules it read (If-Match), with
    the request body's validated fields; answers with the rules as they are now."""
    flag, environment = get_flag(key), get_environment(env)
    if body is not None:
        fields |= validated_body(body, request)
    change(
        flag=flag,
        environment=environment,
        actor=actor_for_request(request),
        expected_rules=_expected_rules(request),
        **fields,
    )
    return _rules_response(flag, environment, status_code)


class RulesView(EnvironmentFlagView):
    """Targeting rules of a flag in an environment, first match wins."""

    @extend_schema(responses=RulesSerializer)
    def get(self, request: Request, key: str, env: str) -> Response:
        return _rules_response(get_flag(key), get_environment(env))

    @extend_schema(
        request=RuleCreateSerializer,
        parameters=[IF_MATCH],
        responses={
            201: RulesSerializer,
            **refusals(
                Refusal(
                    400,
                    "invalid_rule",
                    "The rule is not valid.",
                    errors=(
                        (
                            "constraints",
                            "a rule without constraints or segments serves every context; add a "
                            "condition, or mark the rule 'everyone' if that is what you mean",
                        ),
                    ),
                ),
                examples.REASON_REQUIRED,
                RULES_CHANGED,
            ),
        },
    )
    def post(self, request: Request, key: str, env: str) -> Response:
        return _changed_rules(
            request,
            key,
            env,
            services.add_rule,
            body=RuleCreateSerializer,
            status_code=status.HTTP_201_CREATED,
        )


class RuleDetailView(EnvironmentFlagView):
    """One rule by its index; an index past the last rule is 404."""

    @extend_schema(
        request=RuleUpdateSerializer,
        parameters=[IF_MATCH],
        responses={200: RulesSerializer, **refusals(examples.REASON_REQUIRED, RULES_CHANGED)},
    )
    def patch(self, request: Request, key: str, env: str, index: int) -> Response:
        return _changed_rules(request, key, env, services.update_rule, body=RuleUpdateSerializer, index=index)

    @extend_schema(
        parameters=[IF_MATCH, REASON_PARAMETER],
        responses={200: RulesSerializer, **refusals(examples.REASON_REQUIRED, RULES_CHANGED)},
    )
    def delete(self, request: Request, key: str, env: str, index: int) -> Response:
        reason = delete_reason(request)
        return _changed_rules(request, key, env, services.remove_rule, index=index, reason=reason)


class RuleMoveView(EnvironmentFlagView):
    @extend_schema(
        request=RuleMoveSerializer,
        parameters=[IF_MATCH],
        responses={200: RulesSerializer, **refusals(examples.REASON_REQUIRED, RULES_CHANGED)},
    )
    def post(self, request: Request, key: str, env: str, index: int) -> Response:
        return _changed_rules(request, key, env, services.move_rule, body=RuleMoveSerializer, index=index)


class SplitArmSerializer(serializers.ModelSerializer[SplitArm]):
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = SplitArm
        fields = ["name", "version", "weight"]


class ActiveSplitSerializer(serializers.ModelSerializer[Split]):
    id = serializers.CharField(source="split_id")
    candidate = serializers.IntegerField(
        source="candidate.number", allow_null=True, help_text="A canary's candidate; null for an experiment"
    )
    weight = serializers.IntegerField(
        help_text="Basis points of units served a candidate (the experiment's candidates together)"
    )
    control = serializers.SerializerMethodField()
    arms = SplitArmSerializer(
        many=True, help_text="An experiment's arms, the baseline first; empty for a canary"
    )

    class Meta:
        model = Split
        fields = ["id", "kind", "candidate", "weight", "seed", "control", "arms", "created_at", "updated_at"]

    def get_control(self, split: Split) -> dict[str, int] | None:
        """A canary's control arm's buckets, [from, to): served the baseline, compared with the
        candidate; an experiment's baseline arm is its control."""
        band = None if split.is_experiment else control_band(split.weight)
        return {"from": band[0], "to": band[1]} if band else None


@extend_schema_serializer(examples=[response_example("10 % to v8", examples.SPLIT)])
class SplitDocumentSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    serving_version = serializers.IntegerField(allow_null=True)
    split = ActiveSplitSerializer(allow_null=True)


@extend_schema_serializer(
    examples=[
        request_example("10 % to v8", {"candidate": 8, "weight": 1000, "reason": "Canary of v8 (CHG-4471)"})
    ]
)
class SplitSetSerializer(ReasonSerializer):
    candidate = serializers.IntegerField(min_value=1)
    weight = serializers.IntegerField(min_value=0, max_value=10000, help_text="Basis points (100 = 1 %)")


def _split_document(flag: Flag, environment: Environment) -> dict[str, Any]:
    state = FlagState.objects.current(flag, environment)
    split = Split.objects.active_for(flag, environment)
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
        data = validated_body(SplitSetSerializer, request)
        services.set_split(flag=flag, environment=environment, actor=actor_for_request(request), **data)
        return Response(SplitDocumentSerializer(_split_document(flag, environment)).data)

    @extend_schema(parameters=[REASON_PARAMETER], responses={204: None})
    def delete(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        reason = delete_reason(request)
        services.clear_split(
            flag=flag, environment=environment, actor=actor_for_request(request), reason=reason
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_serializer(examples=[request_example("an enterprise user", {"context": examples.CONTEXT})])
class TrySerializer(StrictSerializer):
    # A DictField, not a JSONField: it does not re-encode the value, which deep nesting breaks.
    # The name shadows Serializer.context only in the stubs: DRF's metaclass moves declared fields.
    context = serializers.DictField(help_text="An evaluation context: a JSON object of at most 64 KiB")  # type: ignore[assignment]


@extend_schema_serializer(examples=[response_example("matched rule 0", examples.TRIED)])
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
        data = validated_body(TrySerializer, request)
        tried = try_context(flag=flag, environment=environment, context=data["context"])
        return Response(TriedContextSerializer(tried.as_dict()).data)
