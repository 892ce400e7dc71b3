"""What the flag dashboard compares across arms: calls over time per version and arm, and the
candidate against its control.

Read from the same rollups and figures as `telemetry.dashboards`: the series sums rollup rows
per minute (a range of an hour) or per hour (longer ranges); the comparison takes the two arms'
`Figures` as the dashboard computed them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncHour, TruncMinute

from telemetry.budgets import Budgets
from telemetry.dashboards import Figures, Window, arm_label
from telemetry.models import Rollup

# Ranges up to this long are drawn per minute (the rollups' own grain); longer ones per hour.
MINUTE_SERIES_UP_TO = timedelta(hours=1)

ARMS_EXPLAINED = (
    "Candidate: units served the new version. Control: as many units again, served the published "
    "version at the same time (the fair comparison). Baseline: everyone else, also on the published "
    "version."
)


def step_of(window: Window) -> timedelta:
    return timedelta(minutes=1) if window.end - window.start <= MINUTE_SERIES_UP_TO else timedelta(hours=1)


def calls_series(rollups: QuerySet[Rollup], window: Window) -> dict[str, Any]:
    """Chart data: calls per minute or hour, one line per version and arm, zeros where none."""
    step = step_of(window)
    trunc = TruncMinute if step == timedelta(minutes=1) else TruncHour
    first = window.start.replace(second=0, microsecond=0)
    if step == timedelta(hours=1):
        first = first.replace(minute=0)
    times: list[datetime] = []
    moment = first
    while moment < window.end:
        times.append(moment)
        moment += step
    series: dict[str, dict[datetime, int]] = defaultdict(dict)
    rows = (
        rollups.annotate(slot=trunc("bucket"))
        .values("slot", "version", "arm")
        .annotate(n=Sum("calls"))
        .order_by("version", "arm", "slot")
    )
    for row in rows:
        series[arm_label(row["version"], row["arm"])][row["slot"]] = row["n"] or 0
    label_format = "%H:%M" if step == timedelta(minutes=1) else "%m-%d %H:00"
    return {
        "labels": [moment.strftime(label_format) for moment in times],
        "datasets": [
            {
                "label": label,
                "data": [counts.get(moment, 0) for moment in times],
                "pointRadius": 0,
            }
            for label, counts in series.items()
        ],
    }


@dataclass(frozen=True)
class MetricComparison:
    label: str
    candidate: str
    control: str
    difference: str
    verdict: str
    """"within budget", "over budget" or "no budget"."""


@dataclass(frozen=True)
class ArmComparison:
    candidate: Figures
    control: Figures
    rows: list[MetricComparison]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def _points(candidate: float | None, control: float | None, unit: str, digits: int = 2) -> str:
    if candidate is None or control is None:
        return "—"
    return f"{candidate - control:+.{digits}f}{unit}"


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else f"${value:.6f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _latency_verdict(candidate_p95: float | None, budget: int | None) -> str:
    if budget is None:
        return "no budget"
    if candidate_p95 is None:
        return "no data"
    return "within budget" if candidate_p95 <= budget else "over budget"


def candidate_vs_control(arms: list[Figures], budgets: Budgets) -> ArmComparison | None:
    """The candidate against its control, when both arms have calls in the range."""
    by_arm = {figures.arm: figures for figures in arms if figures.calls}
    candidate, control = by_arm.get("candidate"), by_arm.get("control")
    if candidate is None or control is None:
        return None
    cost_difference = (
        None
        if candidate.cost_per_call_usd is None or control.cost_per_call_usd is None
        else candidate.cost_per_call_usd - control.cost_per_call_usd
    )
    rows = [
        MetricComparison(
            "Calls",
            str(candidate.calls),
            str(control.calls),
            f"{candidate.calls - control.calls:+d}",
            "no budget",
        ),
        MetricComparison(
            "Error rate",
            _percent(candidate.error_percent),
            _percent(control.error_percent),
            _points(candidate.error_percent, control.error_percent, " points"),
            "no budget",
        ),
        MetricComparison(
            "Cache-hit ratio",
            _percent(candidate.cache_hit_percent),
            _percent(control.cache_hit_percent),
            _points(candidate.cache_hit_percent, control.cache_hit_percent, " points", 1),
            "no budget",
        ),
        MetricComparison(
            "Cost per call",
            _usd(candidate.cost_per_call_usd),
            _usd(control.cost_per_call_usd),
            "—" if cost_difference is None else f"{cost_difference:+.6f} USD",
            "no budget",
        ),
    ]
    for key, label, budget in (
        ("ttft", "TTFT p95", budgets.ttft_p95_ms),
        ("latency", "Total p95", budgets.total_p95_ms),
    ):
        ours, theirs = candidate.p95_ms.get(key), control.p95_ms.get(key)
        rows.append(
            MetricComparison(
                label, _ms(ours), _ms(theirs), _points(ours, theirs, " ms", 0), _latency_verdict(ours, budget)
            )
        )
    return ArmComparison(candidate=candidate, control=control, rows=rows)
