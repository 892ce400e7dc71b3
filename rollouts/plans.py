"""A rollout's plan: its stages and its guardrail policy, checked, with the defaults (pure).

Checking returns the problems as `{path, message}` items (the API's error format); the service
that creates a rollout refuses with them. Stages are weights in basis points, strictly
increasing. A stage is analysed against the control arm, the band [w, 2w) of buckets, which
exists only while w ≤ 50 %; so every stage weighs at most 50 %, except a last stage of 100 %,
which is not analysed: reaching it makes the candidate the serving version.

The metrics a guardrail may read are those the per-arm aggregates can give
(rollouts/arm_aggregates.py): counts from telemetry rollups, live-score rollups and paired-replay
rollups, the latency
histograms, and the cost per call (a mean: the telemetry rollups keep the sum of squared costs
for its variance). Other means (mean judge score, tokens per call) have no sum of squares in
the rollups and are refused as not computable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flagstaff.engine import BUCKETS
from rollouts.analysis import Direction, Kind, OnInconclusive, Source

MAX_ANALYSED_WEIGHT = BUCKETS // 2  # the engine's control band [w, 2w) must fit
MAX_STAGES = 10
SCORED_SOURCES = (Source.LIVE_SCORE, Source.PAIRED_REPLAY)  # guardrails that name a live scorer
GATES = ("auto", "approval")

Problems = list[dict[str, str]]


@dataclass(frozen=True)
class StageSpec:
    weight: int
    min_duration_seconds: int
    max_duration_seconds: int
    min_units_per_arm: int
    min_judged_per_arm: int
    gate: str = "auto"
    on_inconclusive: str = OnInconclusive.PAUSE.value

    @property
    def completes(self) -> bool:
        """Reaching this stage makes the candidate everyone's version."""
        return self.weight == BUCKETS


@dataclass(frozen=True)
class GuardrailSpec:
    name: str
    label: str
    metric: str
    kind: str
    direction: str
    margin: float
    relative_margin: bool = False
    critical: bool = False
    source: str = Source.TELEMETRY.value
    may_act: bool = True
    scorer: str = ""
    quantile: float = 0.95
    cache_sensitive: bool = False
    unit: str = ""


@dataclass(frozen=True)
class MetricDef:
    """A metric the aggregates can compute: its kind and where it is read from."""

    kind: Kind
    source: Source
    label: str
    direction: Direction
    unit: str = ""
    cache_sensitive: bool = False


# Metric name -> what the aggregates give for it (rollouts/arm_aggregates.py reads each).
METRICS: dict[str, MetricDef] = {
    "live_pass_rate": MetricDef(Kind.BINARY, Source.LIVE_SCORE, "live pass rate", Direction.DECREASE_IS_BAD),
    # Paired replay (rollouts/services/paired_replay.py): the mean of d = candidate − control
    # passed on the same control-arm inputs, a continuous metric in [-1, 1].
    "paired_pass_rate": MetricDef(
        Kind.CONTINUOUS, Source.PAIRED_REPLAY, "paired pass rate", Direction.DECREASE_IS_BAD
    ),
    "api_error_rate": MetricDef(Kind.BINARY, Source.TELEMETRY, "API error rate", Direction.INCREASE_IS_BAD),
    "max_tokens_rate": MetricDef(
        Kind.BINARY, Source.TELEMETRY, "max_tokens stop rate", Direction.INCREASE_IS_BAD
    ),
    "refusal_rate": MetricDef(Kind.BINARY, Source.TELEMETRY, "refusal stop rate", Direction.INCREASE_IS_BAD),
    "ttft_p95": MetricDef(
        Kind.QUANTILE, Source.TELEMETRY, "TTFT p95", Direction.INCREASE_IS_BAD, "ms", cache_sensitive=True
    ),
    "latency_p95": MetricDef(
        Kind.QUANTILE,
        Source.TELEMETRY,
        "total latency p95",
        Direction.INCREASE_IS_BAD,
        "ms",
        cache_sensitive=True,
    ),
    "cost_per_call": MetricDef(
        Kind.CONTINUOUS,
        Source.TELEMETRY,
        "cost per call",
        Direction.INCREASE_IS_BAD,
        "$",
        cache_sensitive=True,
    ),
}

DEFAULT_STAGES: tuple[StageSpec, ...] = (
    StageSpec(100, 30 * 60, 4 * 60 * 60, 100, 30),
    StageSpec(1_000, 60 * 60, 12 * 60 * 60, 500, 100),
    StageSpec(BUCKETS, 0, 0, 0, 0),
)
# Absolute margins of the default policy: points of a proportion; latency margins are a share
# of the surface's budget, or of the control's p95 when the surface has none.
DEFAULT_PASS_RATE_MARGIN = 0.02
DEFAULT_ERROR_RATE_MARGIN = 0.01
DEFAULT_STOP_RATE_MARGIN = 0.01
DEFAULT_LATENCY_MARGIN_SHARE = 0.10
# Cost per call has no per-call budget (the surface budget is per day): the margin is a share of
# the control's cost per call.
DEFAULT_COST_MARGIN_SHARE = 0.05


def default_guardrails(
    *, latency_budgets_ms: Mapping[str, int | None], scorers: Sequence[str]
) -> list[GuardrailSpec]:
    """The default policy: live pass rate per live scorer (critical), API errors (critical), the
    max_tokens and refusal stop rates, TTFT and total p95 against the surface's budget, and the
    cost per call within a share of the control's."""

    def spec(metric: str, margin: float, *, name: str = "", scorer: str = "", **extra: Any) -> GuardrailSpec:
        found = METRICS[metric]
        return GuardrailSpec(
            name=name or metric,
            label=f"{found.label} ({scorer})" if scorer else found.label,
            metric=metric,
            kind=found.kind.value,
            direction=found.direction.value,
            margin=margin,
            source=found.source.value,
            scorer=scorer,
            cache_sensitive=found.cache_sensitive,
            unit=found.unit,
            **extra,
        )

    policy = [
        spec(
            "live_pass_rate",
            DEFAULT_PASS_RATE_MARGIN,
            name=f"live_pass_rate:{key}",
            scorer=key,
            critical=True,
        )
        for key in scorers
    ]
    policy += [
        spec("api_error_rate", DEFAULT_ERROR_RATE_MARGIN, critical=True),
        spec("max_tokens_rate", DEFAULT_STOP_RATE_MARGIN),
        spec("refusal_rate", DEFAULT_STOP_RATE_MARGIN),
    ]
    for metric, budget_key in (("ttft_p95", "ttft_p95_ms"), ("latency_p95", "total_p95_ms")):
        budget = latency_budgets_ms.get(budget_key)
        if budget:
            policy.append(spec(metric, DEFAULT_LATENCY_MARGIN_SHARE * budget))
        else:
            policy.append(spec(metric, DEFAULT_LATENCY_MARGIN_SHARE, relative_margin=True))
    policy.append(spec("cost_per_call", DEFAULT_COST_MARGIN_SHARE, relative_margin=True))
    return policy


def paired_guardrail(scorer: str) -> GuardrailSpec:
    """The paired-replay guardrail on a live scorer: critical, with the live pass rate's margin."""
    found = METRICS["paired_pass_rate"]
    return GuardrailSpec(
        name=f"paired_pass_rate:{scorer}",
        label=f"{found.label} ({scorer})",
        metric="paired_pass_rate",
        kind=found.kind.value,
        direction=found.direction.value,
        margin=DEFAULT_PASS_RATE_MARGIN,
        source=found.source.value,
        scorer=scorer,
        critical=True,
    )


def _whole(value: Any, *, low: int, path: str, problems: Problems) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        problems.append({"path": path, "message": f"must be a whole number of at least {low}"})
        return low
    return value


def clean_stages(raw: Sequence[Mapping[str, Any]]) -> tuple[list[StageSpec], Problems]:
    """The stages as specs, and every problem found (an empty list: they are valid)."""
    problems: Problems = []
    if not raw:
        return [], [{"path": "stages", "message": "a rollout needs at least one stage"}]
    if len(raw) > MAX_STAGES:
        return [], [{"path": "stages", "message": f"at most {MAX_STAGES} stages"}]
    specs: list[StageSpec] = []
    for index, item in enumerate(raw):
        at = f"stages[{index}]"
        weight = _whole(item.get("weight"), low=1, path=f"{at}.weight", problems=problems)
        last = index == len(raw) - 1
        if weight > BUCKETS:
            problems.append({"path": f"{at}.weight", "message": f"at most {BUCKETS} basis points (100 %)"})
        elif MAX_ANALYSED_WEIGHT < weight < BUCKETS or (weight == BUCKETS and not last):
            problems.append(
                {
                    "path": f"{at}.weight",
                    "message": f"a stage above {MAX_ANALYSED_WEIGHT} basis points leaves no control arm; "
                    f"only the last stage may be {BUCKETS} (the promotion)",
                }
            )
        if specs and weight <= specs[-1].weight:
            problems.append(
                {"path": f"{at}.weight", "message": f"must be above the previous stage's {specs[-1].weight}"}
            )
        min_duration = _whole(
            item.get("min_duration_seconds", 0), low=0, path=f"{at}.min_duration_seconds", problems=problems
        )
        max_duration = _whole(
            item.get("max_duration_seconds", max(min_duration, 1)),
            low=0,
            path=f"{at}.max_duration_seconds",
            problems=problems,
        )
        if max_duration < min_duration:
            problems.append(
                {"path": f"{at}.max_duration_seconds", "message": "must be at least the minimum duration"}
            )
        gate = item.get("gate", "auto")
        if gate not in GATES:
            problems.append({"path": f"{at}.gate", "message": f"one of {', '.join(GATES)}"})
        on_inconclusive = item.get("on_inconclusive", OnInconclusive.PAUSE.value)
        if on_inconclusive not in {choice.value for choice in OnInconclusive}:
            problems.append(
                {
                    "path": f"{at}.on_inconclusive",
                    "message": f"one of {', '.join(c.value for c in OnInconclusive)}",
                }
            )
        specs.append(
            StageSpec(
                weight=weight,
                min_duration_seconds=min_duration,
                max_duration_seconds=max_duration,
                min_units_per_arm=_whole(
                    item.get("min_units_per_arm", 100),
                    low=0,
                    path=f"{at}.min_units_per_arm",
                    problems=problems,
                ),
                min_judged_per_arm=_whole(
                    item.get("min_judged_per_arm", 30),
                    low=0,
                    path=f"{at}.min_judged_per_arm",
                    problems=problems,
                ),
                gate=str(gate),
                on_inconclusive=str(on_inconclusive),
            )
        )
    return specs, problems


def clean_guardrails(raw: Sequence[Mapping[str, Any]]) -> tuple[list[GuardrailSpec], Problems]:
    """The guardrails as specs: each reads a metric the aggregates can compute, of its kind."""
    problems: Problems = []
    specs: list[GuardrailSpec] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        at = f"policy[{index}]"
        metric = item.get("metric")
        found = METRICS.get(metric) if isinstance(metric, str) else None
        if found is None:
            problems.append(
                {
                    "path": f"{at}.metric",
                    "message": f"not a metric the rollups can compute; one of {', '.join(METRICS)}",
                }
            )
            continue
        assert isinstance(metric, str)
        kind = item.get("kind", found.kind.value)
        if kind != found.kind.value:
            problems.append(
                {
                    "path": f"{at}.kind",
                    "message": f"{metric} is {found.kind.value}; {kind} cannot be computed",
                }
            )
        direction = item.get("direction", found.direction.value)
        if direction not in {d.value for d in Direction}:
            problems.append(
                {"path": f"{at}.direction", "message": f"one of {', '.join(d.value for d in Direction)}"}
            )
        margin = item.get("margin")
        if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
            problems.append({"path": f"{at}.margin", "message": "must be a number of at least 0"})
            margin = 0.0
        scorer = item.get("scorer", "")
        if found.source in SCORED_SOURCES and not (isinstance(scorer, str) and scorer):
            problems.append({"path": f"{at}.scorer", "message": f"{metric} names its live scorer's key"})
        name = item.get("name") or (f"{metric}:{scorer}" if scorer else metric)
        if not isinstance(name, str) or len(name) > 64:
            problems.append({"path": f"{at}.name", "message": "a name of at most 64 characters"})
            continue
        if name in names:
            problems.append(
                {"path": f"{at}.name", "message": f"'{name}' is already a guardrail of this policy"}
            )
        names.add(name)
        quantile = item.get("quantile", 0.95)
        if isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0 < quantile < 1:
            problems.append({"path": f"{at}.quantile", "message": "a number strictly between 0 and 1"})
            quantile = 0.95
        flags = {}
        for key in ("relative_margin", "critical", "may_act"):
            value = item.get(key, key == "may_act")
            if not isinstance(value, bool):
                problems.append({"path": f"{at}.{key}", "message": "true or false"})
                value = False
            flags[key] = value
        specs.append(
            GuardrailSpec(
                name=name,
                label=str(item.get("label") or (f"{found.label} ({scorer})" if scorer else found.label))[
                    :100
                ],
                metric=metric,
                kind=found.kind.value,
                direction=str(direction),
                margin=float(margin),
                source=found.source.value,
                scorer=str(scorer),
                quantile=float(quantile),
                cache_sensitive=found.cache_sensitive,
                unit=found.unit,
                **flags,
            )
        )
    if not raw:
        problems.append({"path": "policy", "message": "a policy needs at least one guardrail"})
    return specs, problems


def stage_fields(spec: StageSpec) -> dict[str, Any]:
    return asdict(spec)


def guardrail_fields(spec: GuardrailSpec) -> dict[str, Any]:
    return asdict(spec)
