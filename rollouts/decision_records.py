"""The analysis' values as JSON, and back: what a Decision row keeps and what a tick hands the
next (pure: no Django).

JSON has no infinity and PostgreSQL's jsonb refuses one, so a non-finite number (an unbounded
side of a confidence sequence) is written as null.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from rollouts.analysis import ArmAggregates, Decision, MetricAggregate, MetricResult, TickState


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# Values kept as they are, tested by exact type first: a tick cleans a few thousand of them
# (every histogram bucket of every arm, twice), and the abstract `Mapping` test is the slow one.
_PLAIN = frozenset({str, int, bool, type(None)})


def _clean(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, float):
        return finite(value)
    if kind is dict or isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _fields_json(value: Any) -> Any:
    """A dataclass (and the dataclasses among its fields) as `_clean(dataclasses.asdict(value))`
    makes it, without the deep copy `asdict` makes first."""
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _fields_json(getattr(value, item.name)) for item in fields(value)}
    return _clean(value)


def json_ready(value: Any) -> Any:
    """`value` with every non-finite number as null and every key a string."""
    return _clean(value)


def metric_aggregate_json(aggregate: MetricAggregate) -> dict[str, Any]:
    return _fields_json(aggregate)


def metric_aggregate_from_json(data: Mapping[str, Any]) -> MetricAggregate:
    return MetricAggregate(
        n=int(data.get("n", 0)),
        total=float(data.get("total") or 0.0),
        total_sq=float(data.get("total_sq") or 0.0),
        histogram={int(bucket): int(count) for bucket, count in (data.get("histogram") or {}).items()},
        errors=int(data.get("errors", 0)),
    )


def arm_json(arm: ArmAggregates) -> dict[str, Any]:
    return {
        "units": arm.units,
        "cache_hit_ratio": finite(arm.cache_hit_ratio),
        "metrics": {name: metric_aggregate_json(aggregate) for name, aggregate in arm.metrics.items()},
    }


def arm_from_json(data: Mapping[str, Any]) -> ArmAggregates:
    return ArmAggregates(
        units=int(data.get("units", 0)),
        cache_hit_ratio=data.get("cache_hit_ratio"),
        metrics={
            name: metric_aggregate_from_json(item) for name, item in (data.get("metrics") or {}).items()
        },
    )


def tick_state_json(state: TickState) -> dict[str, Any]:
    snapshot = state.warm_snapshot
    return {
        "consecutive": dict(state.consecutive),
        "warmup_seen": state.warmup_seen,
        "warm_since_seconds": finite(state.warm_since_seconds),
        "warm_snapshot": [arm_json(snapshot[0]), arm_json(snapshot[1])] if snapshot else None,
    }


def tick_state_from_json(data: Mapping[str, Any]) -> TickState:
    """The state the last tick left; an empty mapping (a new stage) is the initial state."""
    snapshot = data.get("warm_snapshot")
    return TickState(
        consecutive={str(name): int(count) for name, count in (data.get("consecutive") or {}).items()},
        warmup_seen=bool(data.get("warmup_seen", False)),
        warm_since_seconds=data.get("warm_since_seconds"),
        warm_snapshot=(arm_from_json(snapshot[0]), arm_from_json(snapshot[1])) if snapshot else None,
    )


def metric_result_json(result: MetricResult) -> dict[str, Any]:
    return _fields_json(result)


def decision_metrics_json(decision: Decision) -> list[dict[str, Any]]:
    return [metric_result_json(result) for result in decision.metrics]


def inputs_hash(inputs: Mapping[str, Any]) -> str:
    """SHA-256 of the inputs' canonical JSON: two decisions on the same numbers share it."""
    canonical = json.dumps(_clean(inputs), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
