"""A rollout's arms over time, for the charts of its page: per time slot and arm, the live pass
rate (cumulative since the rollout started, with its 95 % Wilson interval), the API error rate,
TTFT and total p95 against the surface's budget line, and the cost per call.

Read from the rollups the analysis reads, with the analysis' own row filter
(`rollouts.arm_aggregates.Window`: the candidate version in the `candidate` arm, the baseline in
the `control` band) and summed per slot in SQL: three queries whatever the rollout's length or
its traffic. A slot is a minute for a rollout up to two hours old, an hour up to three days,
then a day, so a chart keeps a readable number of points.

The interval on the chart is the fixed-sample Wilson interval of the cumulative pass rate
(`evals.stats.wilson_interval`); the decisions use the wider anytime-valid bounds of the
analysis, and the page says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.db.models.functions.datetime import TruncBase
from django.utils import timezone

from evals.models import LiveScoreRollup
from evals.stats import wilson_interval
from rollouts.arm_aggregates import CANARY, CONTROL, HISTOGRAMS, Window
from rollouts.models import Guardrail, Rollout
from telemetry import histograms
from telemetry.budgets import effective_budgets
from telemetry.models.calls import Rollup, RollupHistogram

# (the longest rollout drawn at this grain, the SQL truncation, the slot's length, its label)
GRAINS: tuple[tuple[timedelta | None, type[TruncBase], timedelta, str], ...] = (
    (timedelta(hours=2), TruncMinute, timedelta(minutes=1), "%H:%M"),
    (timedelta(days=3), TruncHour, timedelta(hours=1), "%d %b %H:00"),
    (None, TruncDay, timedelta(days=1), "%d %b"),
)
# The order arms are drawn in, with their colours: the candidate stands out, the control is calm.
ARMS = ((CANARY, "#4338ca"), (CONTROL, "#0e7490"))
BAND_ALPHA = "33"  # the interval band: the arm's colour at 20 % opacity (#rrggbbaa)


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    unit: str
    data: dict[str, Any]
    note: str = ""  # the budget it is drawn against, in words
    # A pass rate moves within a few points: its axis starts near the data, not at zero.
    begin_at_zero: bool = True


@dataclass(frozen=True)
class ArmSeries:
    """The charts of a rollout, one point per slot from its start to its end (or now)."""

    grain: str
    labels: list[str]
    charts: list[Chart]

    @property
    def has_traffic(self) -> bool:
        return any(
            value is not None
            for chart in self.charts
            for dataset in chart.data["datasets"]
            if not dataset.get("budget")
            for value in dataset["data"]
        )


# Per arm, one value per slot.
PerArm = dict[str, list[float]]


@dataclass(frozen=True)
class _Slots:
    """The time slots of a chart and how SQL truncates a rollup's minute to one of them."""

    trunc: type[TruncBase]
    times: list[datetime]
    label_format: str
    grain: str  # minute, hour or day

    @property
    def index(self) -> dict[datetime, int]:
        return {moment: position for position, moment in enumerate(self.times)}

    def zeros(self) -> PerArm:
        return {arm: [0.0] * len(self.times) for arm, _ in ARMS}


def _slots(start: datetime, end: datetime) -> _Slots:
    """The slots from `start` to `end`, a minute, an hour or a day each by the span."""
    _, trunc, step, label_format = next(
        grain for grain in GRAINS if grain[0] is None or end - start <= grain[0]
    )
    first = _floor(start, step)
    times = []
    moment = first
    while moment < end:
        times.append(moment)
        moment += step
    grain = {TruncMinute: "minute", TruncHour: "hour", TruncDay: "day"}[trunc]
    return _Slots(trunc, times or [first], label_format, grain)


def _floor(moment: datetime, step: timedelta) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if step >= timedelta(hours=1):
        moment = moment.replace(minute=0)
    if step >= timedelta(days=1):
        moment = moment.replace(hour=0)
    return moment


def _label(version: int, arm: str) -> str:
    return f"v{version} · {arm}"


def _line(label: str, colour: str, data: Sequence[float | None], **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "data": list(data),
        "borderColor": colour,
        "backgroundColor": colour,
        "pointRadius": 2,
        "spanGaps": True,
        **extra,
    }


def _budget_line(label: str, budget: int, slots: int) -> dict[str, Any]:
    # type "line" inside a line chart: static/telemetry/charts.js draws it dashed.
    return {
        "type": "line",
        "label": label,
        "data": [budget] * slots,
        "borderColor": "#b91c1c",
        "backgroundColor": "#b91c1c",
        "pointRadius": 0,
        "budget": True,
    }


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return round(numerator / denominator * scale, 6) if denominator else None


def _read_counters(window: Window, slots: _Slots) -> dict[str, PerArm]:
    """Calls, errors, cost (micro-USD) and calls of unknown cost per arm and slot."""
    counters: dict[str, PerArm] = defaultdict(slots.zeros)
    index = slots.index
    rows = (
        Rollup.objects.filter(window.rows())
        .annotate(slot=slots.trunc("bucket", tzinfo=UTC))
        .values("slot", "arm")
        .annotate(
            calls=Sum("calls"),
            errors=Sum("errors"),
            cost=Sum("cost_micro_usd"),
            unknown=Sum("cost_unknown_calls"),
        )
        .order_by()
    )
    for row in rows:
        if (position := index.get(row["slot"])) is not None:
            for name in ("calls", "errors", "cost", "unknown"):
                counters[name][row["arm"]][position] += row[name] or 0
    return counters


def _read_p95(window: Window, slots: _Slots) -> dict[str, dict[str, list[float | None]]]:
    """Per quantile metric (ttft_p95, latency_p95), per arm and slot: the p95 of the merged
    histograms, in milliseconds."""
    histograms_of: dict[tuple[str, str], list[dict[int, int]]] = defaultdict(
        lambda: [{} for _ in slots.times]
    )
    index = slots.index
    rows = (
        RollupHistogram.objects.filter(window.rows(prefix="rollup__"), metric__in=list(HISTOGRAMS.values()))
        .annotate(slot=slots.trunc("rollup__bucket", tzinfo=UTC))
        .values("slot", "rollup__arm", "metric", "bucket")
        .annotate(total=Sum("n"))
        .order_by()
    )
    for row in rows:
        if (position := index.get(row["slot"])) is not None:
            histograms_of[(row["rollup__arm"], row["metric"])][position][int(row["bucket"])] = int(
                row["total"]
            )
    return {
        metric: {arm: [_p95(counts) for counts in histograms_of[(arm, histogram)]] for arm, _ in ARMS}
        for metric, histogram in HISTOGRAMS.items()
    }


def _read_scores(window: Window, slots: _Slots, scorers: list[str]) -> dict[tuple[str, str], PerArm]:
    """(scorer, "judged" or "passed") -> per arm and slot; scorer errors are not judged."""
    scores: dict[tuple[str, str], PerArm] = defaultdict(slots.zeros)
    if not scorers:
        return scores
    index = slots.index
    rows = (
        LiveScoreRollup.objects.filter(window.rows(), scorer__in=scorers)
        .annotate(slot=slots.trunc("bucket", tzinfo=UTC))
        .values("slot", "arm", "scorer")
        .annotate(n=Sum("n"), passed=Sum("passed"), errors=Sum("errors"))
        .order_by()
    )
    for row in rows:
        if (position := index.get(row["slot"])) is not None:
            scores[(row["scorer"], "judged")][row["arm"]][position] += (row["n"] or 0) - (row["errors"] or 0)
            scores[(row["scorer"], "passed")][row["arm"]][position] += row["passed"] or 0
    return scores


def rollout_arm_series(rollout: Rollout, *, now: datetime | None = None) -> ArmSeries | None:
    """The charts of `rollout` since its first stage started; None before it started."""
    first = rollout.stages.order_by("index").values_list("started_at", flat=True).first()
    if first is None:
        return None
    end = rollout.ended_at or now or timezone.now()
    guardrails = list(Guardrail.objects.filter(rollout=rollout))
    window = Window.of_rollout(rollout, guardrails, first, end + timedelta(minutes=1))
    slots = _slots(first, end)
    times = slots.times
    versions = {CANARY: rollout.candidate.number, CONTROL: rollout.baseline.number}
    scorers = [g for g in guardrails if g.metric == "live_pass_rate" and g.scorer]
    counters = _read_counters(window, slots)
    p95 = _read_p95(window, slots)
    scores = _read_scores(window, slots, [g.scorer for g in scorers])

    budgets = effective_budgets(rollout.flag.surface, rollout.flag.budgets or {})
    count = range(len(times))
    arms = [arm for arm, _ in ARMS]
    error_rate = {
        arm: [_ratio(counters["errors"][arm][i], counters["calls"][arm][i], 100) for i in count]
        for arm in arms
    }
    charts = [
        *(_pass_rate_chart(g, scores, versions, len(times)) for g in scorers),
        _per_slot_chart("error_rate", "API error rate", "% of calls", versions, error_rate),
    ]
    for metric, title, budget in (
        ("ttft_p95", "Time to first token, p95", budgets.ttft_p95_ms),
        ("latency_p95", "Total latency, p95", budgets.total_p95_ms),
    ):
        note = (
            f"budget {budget} ms" if budget is not None else f"no budget for a {rollout.flag.surface} surface"
        )
        chart = _per_slot_chart(metric, title, "ms", versions, p95[metric], note)
        if budget is not None:
            chart.data["datasets"].append(_budget_line(f"budget {budget} ms", budget, len(times)))
        charts.append(chart)
    known = {arm: [counters["calls"][arm][i] - counters["unknown"][arm][i] for i in count] for arm in arms}
    cost = {arm: [_ratio(counters["cost"][arm][i] / 1_000_000, known[arm][i]) for i in count] for arm in arms}
    charts.append(_per_slot_chart("cost_per_call", "Cost per call", "USD", versions, cost))
    labels = [moment.strftime(slots.label_format) for moment in times]
    for chart in charts:
        chart.data["labels"] = labels
    return ArmSeries(grain=slots.grain, labels=labels, charts=charts)


def _p95(histogram: dict[int, int]) -> float | None:
    value = histograms.percentiles(histogram, (0.95,))[0.95] if histogram else None
    return None if value is None else round(value)


def _per_slot_chart(
    key: str,
    title: str,
    unit: str,
    versions: dict[str, int],
    values: dict[str, list[float | None]],
    note: str = "",
) -> Chart:
    datasets = [_line(_label(versions[arm], arm), colour, values[arm]) for arm, colour in ARMS]
    return Chart(key, title, unit, {"datasets": datasets}, note)


def _pass_rate_chart(
    guardrail: Guardrail,
    scores: dict[tuple[str, str], dict[str, list[float]]],
    versions: dict[str, int],
    slots: int,
) -> Chart:
    """The cumulative pass rate per arm and its interval band, in percent; a gap until judged."""
    datasets = []
    for arm, colour in ARMS:
        judged_per_slot = scores[(guardrail.scorer, "judged")][arm]
        passed_per_slot = scores[(guardrail.scorer, "passed")][arm]
        rates: list[float | None] = []
        lows: list[float | None] = []
        highs: list[float | None] = []
        judged = passed = 0
        for i in range(slots):
            judged += int(judged_per_slot[i])
            passed += int(passed_per_slot[i])
            if judged == 0:
                rates.append(None)
                lows.append(None)
                highs.append(None)
                continue
            low, high = wilson_interval(passed, judged)
            rates.append(round(passed / judged * 100, 2))
            lows.append(round(low * 100, 2))
            highs.append(round(high * 100, 2))
        label = _label(versions[arm], arm)
        band = {"pointRadius": 0, "borderWidth": 0, "hideInLegend": True, "spanGaps": True}
        datasets.append(_line(f"{label}, 95 % interval low", colour + BAND_ALPHA, lows, **band))
        # Filled down to the dataset just before it: the band between the two bounds.
        datasets.append(_line(f"{label}, 95 % interval high", colour + BAND_ALPHA, highs, fill="-1", **band))
        datasets.append(_line(label, colour, rates))
    return Chart(
        f"pass_rate_{guardrail.scorer}",
        guardrail.label,
        "% passed",
        {"datasets": datasets},
        begin_at_zero=False,
    )
