"""What the telemetry dashboards show, read from the rollups (never from raw calls).

Every figure is an SQL aggregate over rollup rows of the chosen time range; only percentiles
are finished in Python, from summed histogram buckets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import TruncDate

from flags.models import Environment, Flag
from telemetry import histograms
from telemetry.budgets import Budgets, effective_budgets
from telemetry.models import Rollup, RollupCount, RollupHistogram
from telemetry.services.rollups import ROLLUP_COUNTERS, STOP_COLUMNS

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"
MICRO = Decimal("0.000001")


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, now: datetime, key: str | None) -> Window:
        key = key if key in RANGES else DEFAULT_RANGE
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return cls(key, end - RANGES[key], end)


@dataclass
class Figures:
    """Totals of one group of rollups (a flag, or a version and arm of one)."""

    label: str
    version: int | None = None
    arm: str = ""
    sums: dict[str, int] = field(default_factory=dict)
    p95_ms: dict[str, float | None] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)
    other_stop_reasons: dict[str, int] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return self.sums.get(name) or 0

    @property
    def calls(self) -> int:
        return self.total("calls")

    @property
    def error_rate(self) -> float | None:
        return self.total("errors") / self.calls if self.calls else None

    @property
    def prompt_tokens(self) -> int:
        return sum(
            self.total(name)
            for name in (
                "input_tokens",
                "cache_write_5m_tokens",
                "cache_write_1h_tokens",
                "cache_read_tokens",
            )
        )

    @property
    def cache_hit_ratio(self) -> float | None:
        """Share of prompt tokens read from the cache."""
        prompt = self.prompt_tokens
        return self.total("cache_read_tokens") / prompt if prompt else None

    @property
    def error_percent(self) -> float | None:
        rate = self.error_rate
        return None if rate is None else rate * 100

    @property
    def cache_hit_percent(self) -> float | None:
        ratio = self.cache_hit_ratio
        return None if ratio is None else ratio * 100

    @property
    def cost_usd(self) -> Decimal:
        return (Decimal(self.total("cost_micro_usd")) * MICRO).quantize(MICRO)

    @property
    def cost_per_call_usd(self) -> Decimal | None:
        priced = self.calls - self.total("cost_unknown_calls")
        return (self.cost_usd / priced).quantize(MICRO) if priced else None

    @property
    def stop_mix(self) -> list[tuple[str, int, float]]:
        """(stop reason, calls, share of calls) for every reason seen, known ones first."""
        rows = [(reason, self.total(column)) for reason, column in STOP_COLUMNS.items()]
        rows += sorted(self.other_stop_reasons.items())
        rows.append(("none (failed)", self.total("stop_none")))
        return [(reason, count, count / self.calls) for reason, count in rows if count and self.calls]


@dataclass
class LatencyCheck:
    metric: str
    label: str
    p95_ms: float | None
    budget_ms: int | None

    @property
    def breached(self) -> bool:
        return self.p95_ms is not None and self.budget_ms is not None and self.p95_ms > self.budget_ms


@dataclass
class FlagDashboard:
    flag: Flag
    window: Window
    environment: Environment | None
    budgets: Budgets
    total: Figures
    arms: list[Figures]
    daily_cost: dict[str, Any]
    stop_chart: dict[str, Any]
    latency_chart: dict[str, Any]
    rollups: QuerySet[Rollup]
    """The rows every figure above sums, for the reads that go on from them (telemetry.comparison)."""

    def checks(self, figures: Figures) -> list[LatencyCheck]:
        return [
            LatencyCheck("ttft", "TTFT p95", figures.p95_ms.get("ttft"), self.budgets.ttft_p95_ms),
            LatencyCheck("latency", "Total p95", figures.p95_ms.get("latency"), self.budgets.total_p95_ms),
        ]

    @property
    def total_checks(self) -> list[LatencyCheck]:
        return self.checks(self.total)

    @property
    def arm_rows(self) -> list[tuple[Figures, list[LatencyCheck]]]:
        return [(arm, self.checks(arm)) for arm in self.arms]


def _rollups(window: Window, environment: Environment | None) -> QuerySet[Rollup]:
    rollups = Rollup.objects.between(window.start, window.end)
    return rollups.filter(environment=environment) if environment is not None else rollups


def _sums() -> dict[str, Sum]:
    return {name: Sum(name) for name in ROLLUP_COUNTERS}


def arm_label(version: int | None, arm: str) -> str:
    version_label = f"v{version}" if version is not None else "no version"
    return f"{version_label} · {arm}" if arm else version_label


def flag_dashboard(flag: Flag, window: Window, environment: Environment | None = None) -> FlagDashboard:
    """Per version and arm: calls, errors, stop reasons, cache hits, cost and p95 latencies."""
    rollups = _rollups(window, environment).filter(flag=flag)
    arms: dict[tuple[int | None, str], Figures] = {}
    for row in rollups.values("version", "arm").annotate(**_sums()).order_by("version", "arm"):
        key = (row["version"], row["arm"])
        arms[key] = Figures(
            arm_label(*key), row["version"], row["arm"], {n: row[n] or 0 for n in ROLLUP_COUNTERS}
        )
    total = Figures("All traffic", sums=rollups.aggregate(**_sums()))

    histogram_rows = (
        RollupHistogram.objects.filter(rollup__in=rollups)
        .values(version=F("rollup__version"), arm=F("rollup__arm"), metric_name=F("metric"), slot=F("bucket"))
        .annotate(n=Sum("n"))
    )
    per_arm: dict[tuple[int | None, str], dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    overall: dict[str, dict[int, int]] = defaultdict(dict)
    for row in histogram_rows:
        per_arm[(row["version"], row["arm"])][row["metric_name"]][row["slot"]] = row["n"]
        bucket_counts = overall[row["metric_name"]]
        bucket_counts[row["slot"]] = bucket_counts.get(row["slot"], 0) + row["n"]
    for key, figures in arms.items():
        figures.p95_ms = _p95(per_arm.get(key, {}))
    total.p95_ms = _p95(overall)

    count_rows = (
        RollupCount.objects.filter(rollup__in=rollups)
        .values(version=F("rollup__version"), arm=F("rollup__arm"), kind_name=F("kind"), value=F("key"))
        .annotate(n=Sum("n"))
    )
    for row in count_rows:
        figures_for = (
            [arms[(row["version"], row["arm"])], total] if (row["version"], row["arm"]) in arms else [total]
        )
        for figures in figures_for:
            target = (
                figures.error_types
                if row["kind_name"] == RollupCount.Kind.ERROR_TYPE
                else figures.other_stop_reasons
            )
            target[row["value"]] = target.get(row["value"], 0) + row["n"]

    ordered = list(arms.values())
    budgets = effective_budgets(flag.surface, flag.budgets or {})
    return FlagDashboard(
        flag=flag,
        window=window,
        environment=environment,
        budgets=budgets,
        total=total,
        arms=ordered,
        daily_cost=_daily_cost(rollups, window),
        stop_chart=_stop_chart(ordered),
        latency_chart=_latency_chart(ordered, budgets),
        rollups=rollups,
    )


def _p95(metrics: Mapping[str, Mapping[int, int]]) -> dict[str, float | None]:
    return {
        metric: histograms.percentiles(metrics.get(metric, {}), (0.95,))[0.95]
        for metric in (RollupHistogram.Metric.TTFT, RollupHistogram.Metric.LATENCY)
    }


def _days(window: Window) -> list[date]:
    first, last = window.start.date(), (window.end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _daily_cost(rollups: QuerySet[Rollup], window: Window) -> dict[str, Any]:
    """Chart data: USD per UTC day, one dataset per version and arm."""
    days = _days(window)
    series: dict[str, dict[date, float]] = defaultdict(dict)
    rows = (
        rollups.annotate(day=TruncDate("bucket"))
        .values("day", "version", "arm")
        .annotate(cost=Sum("cost_micro_usd"))
        .order_by("version", "arm", "day")
    )
    for row in rows:
        series[arm_label(row["version"], row["arm"])][row["day"]] = (row["cost"] or 0) / 1_000_000
    return {
        "labels": [day.isoformat() for day in days],
        "datasets": [
            {"label": label, "data": [round(values.get(day, 0.0), 6) for day in days]}
            for label, values in series.items()
        ],
    }


def _stop_chart(arms: Iterable[Figures]) -> dict[str, Any]:
    """Chart data: share of calls per stop reason, one bar per version and arm."""
    arms = list(arms)
    reasons: list[str] = []
    for figures in arms:
        for reason, _, _ in figures.stop_mix:
            if reason not in reasons:
                reasons.append(reason)
    shares = {figures.label: {reason: share for reason, _, share in figures.stop_mix} for figures in arms}
    return {
        "labels": [figures.label for figures in arms],
        "datasets": [
            {"label": reason, "data": [round(shares[f.label].get(reason, 0.0) * 100, 2) for f in arms]}
            for reason in reasons
        ],
    }


def _latency_chart(arms: Iterable[Figures], budgets: Budgets) -> dict[str, Any]:
    """Chart data: p95 per version and arm as bars, the flag's budgets as lines across them."""
    arms = list(arms)
    datasets: list[dict[str, Any]] = [
        {"label": "TTFT p95 (ms)", "data": [_rounded(f.p95_ms.get("ttft")) for f in arms]},
        {"label": "Total p95 (ms)", "data": [_rounded(f.p95_ms.get("latency")) for f in arms]},
    ]
    for label, budget in (("TTFT budget", budgets.ttft_p95_ms), ("Total budget", budgets.total_p95_ms)):
        if budget is not None:
            datasets.append({"type": "line", "label": label, "data": [budget] * len(arms), "pointRadius": 0})
    return {"labels": [figures.label for figures in arms], "datasets": datasets}


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


@dataclass
class OverviewRow:
    flag_key: str | None
    figures: Figures


def overview(window: Window, environment: Environment | None = None) -> list[OverviewRow]:
    """One row per flag with traffic in the window (unattributed calls last)."""
    rollups = _rollups(window, environment)
    rows = []
    for row in rollups.values("flag__key").annotate(**_sums()).order_by(F("flag__key").asc(nulls_last=True)):
        sums = {name: row[name] or 0 for name in ROLLUP_COUNTERS}
        rows.append(OverviewRow(row["flag__key"], Figures(row["flag__key"] or "unattributed", sums=sums)))
    histogram_rows = (
        RollupHistogram.objects.filter(rollup__in=rollups)
        .values(flag_key=F("rollup__flag__key"), metric_name=F("metric"), slot=F("bucket"))
        .annotate(n=Sum("n"))
    )
    metrics: dict[str | None, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in histogram_rows:
        metrics[row["flag_key"]][row["metric_name"]][row["slot"]] = row["n"]
    for item in rows:
        item.figures.p95_ms = _p95(metrics.get(item.flag_key, {}))
    return rows
