"""The per-tick decision of a rollout stage, and the conclusion of an experiment (pure: no Django).

`decide` takes what a tick knows (the policy, the stage, cumulative per-arm aggregates since the
stage started, the elapsed time, the previous tick's state) and returns a `Decision`: an action,
a stable reason code, every metric's numbers and a one-sentence explanation. The rules, in the
order they are applied (rollout-analysis.md §8.5, DESIGN.md "Analysis"):

1. health: a sample-ratio mismatch shown by the sequential test (p < 0.001, valid at every
   tick) pauses; one the fixed-sample chi-square sees at this tick but the sequential test has
   not confirmed holds the stage (no promotion, no non-critical rollback); either way nothing
   but a critical regression may act on data whose split may be wrong (a rollback is the safe
   direction; a pause would keep the candidate on traffic);
2. data: too few units in an arm extends the stage, then ends it inconclusive at its maximum
   duration; missing data is never a pass and one arm alone never promotes;
3. a critical guardrail regressing acts at once; a non-critical one must be Holm-significant on
   `consecutive_ticks` ticks in a row;
4. scorer errors on an acting metric pause (errors are not failures);
5. promotion needs every acting guardrail shown non-inferior, the minimum duration and the
   minimum samples, and no cost or latency comparison excluded by a cold cache.

Advisory guardrails (`may_act` false) are computed and shown and never change the action.
`conclude_experiment` compares several arms with the baseline on the same guardrails and marks
the cheapest arm that passes them all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from rollouts import stats
from telemetry import histograms


class Kind(StrEnum):
    BINARY = "binary"
    CONTINUOUS = "continuous"
    QUANTILE = "quantile"


class Direction(StrEnum):
    INCREASE_IS_BAD = "increase_is_bad"
    DECREASE_IS_BAD = "decrease_is_bad"


class Source(StrEnum):
    LIVE_SCORE = "live_score"  # judged samples: counted against min_judged_per_arm
    TELEMETRY = "telemetry"  # every call: counted against min_units_per_arm
    # Shadow replay of control inputs through the candidate: the canary arm's aggregate holds the
    # paired differences d = candidate − control (n pairs, Σd, Σd²); counted as judged samples.
    PAIRED_REPLAY = "paired_replay"


class Action(StrEnum):
    HOLD = "hold"
    EXTEND = "extend"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    INCONCLUSIVE = "inconclusive"


class Reason(StrEnum):
    HEALTH_CHECK_FAILED = "health_check_failed"  # sample-ratio mismatch (sequential test)
    SRM_SUSPECTED = "srm_suspected"  # the chi-square sees one this tick, not yet confirmed
    NO_DATA = "no_data"
    ONE_ARM_ONLY = "one_arm_only"
    INSUFFICIENT_DATA = "insufficient_data"
    CRITICAL_REGRESSION = "critical_regression"
    REGRESSION = "regression"
    REGRESSION_UNCONFIRMED = "regression_unconfirmed"
    SCORER_ERRORS = "scorer_errors"
    MIN_DURATION_NOT_MET = "min_duration_not_met"
    CACHE_WARMUP = "cache_warmup"
    AWAITING_EVIDENCE = "awaiting_evidence"
    MAX_DURATION_REACHED = "max_duration_reached"
    NON_INFERIOR = "non_inferior"


class OnInconclusive(StrEnum):
    PAUSE = "pause"
    EXTEND = "extend"
    ADVANCE = "advance"


class MetricStatus(StrEnum):
    REGRESSION = "regression"
    NON_INFERIOR = "non_inferior"
    UNDECIDED = "undecided"
    INSUFFICIENT_DATA = "insufficient_data"
    SCORER_ERRORS = "scorer_errors"
    EXCLUDED_WARMUP = "excluded_warmup"


@dataclass(frozen=True)
class Guardrail:
    """One metric of the policy. `margin` is in the metric's units (a proportion for binary), or a
    fraction of the control's value when `relative_margin`; `cache_sensitive` marks cost and
    latency, which a cold prompt cache inflates for reasons that vanish."""

    name: str
    label: str
    kind: Kind
    direction: Direction
    margin: float
    relative_margin: bool = False
    critical: bool = False
    may_act: bool = True
    source: Source = Source.TELEMETRY
    quantile: float = 0.95
    cache_sensitive: bool = False
    unit: str = ""
    budget: float | None = None  # experiments: the arm's upper bound must stay within it


@dataclass(frozen=True)
class Policy:
    guardrails: tuple[Guardrail, ...]
    # Family-wise error of rollbacks on non-critical guardrails (Holm), and the level of each
    # non-inferiority test (an intersection-union test needs no correction: Berger 1982).
    alpha: float = 0.05
    # Critical guardrails are tested alone at a stricter level (rollout-analysis.md §8.5).
    alpha_critical: float = 0.005
    consecutive_ticks: int = 2
    srm_alpha: float = 0.001
    # Where the confidence sequences are tightest: about the total (both arms) sample size at
    # which a stage is expected to decide.
    n_star: float = 10_000.0
    max_scorer_error_share: float = 0.2
    warmup_tolerance: float = 0.05
    warmup_max_seconds: float = 1800.0


@dataclass(frozen=True)
class Stage:
    weight: float
    min_duration_seconds: float
    max_duration_seconds: float
    min_units_per_arm: int
    min_judged_per_arm: int
    on_inconclusive: OnInconclusive = OnInconclusive.PAUSE
    expected_split: tuple[float, float] = (1.0, 1.0)  # canary : control units


@dataclass(frozen=True)
class MetricAggregate:
    """Cumulative observations of one metric in one arm. Binary: n trials, total events.
    Continuous: n values, their sum and sum of squares. Quantile: the histogram (bucket -> count).
    Scorer errors are counted apart: an error is neither a pass nor a failure."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    histogram: Mapping[int, int] = field(default_factory=dict)
    errors: int = 0

    def minus(self, earlier: MetricAggregate) -> MetricAggregate:
        return MetricAggregate(
            n=self.n - earlier.n,
            total=self.total - earlier.total,
            total_sq=self.total_sq - earlier.total_sq,
            histogram={
                bucket: count - earlier.histogram.get(bucket, 0)
                for bucket, count in self.histogram.items()
                if count - earlier.histogram.get(bucket, 0) > 0
            },
            errors=self.errors - earlier.errors,
        )


@dataclass(frozen=True)
class ArmAggregates:
    units: int = 0
    metrics: Mapping[str, MetricAggregate] = field(default_factory=dict)
    cache_hit_ratio: float | None = None

    def metric(self, name: str) -> MetricAggregate:
        return self.metrics.get(name, MetricAggregate())

    def minus(self, earlier: ArmAggregates) -> ArmAggregates:
        return replace(
            self, metrics={name: agg.minus(earlier.metric(name)) for name, agg in self.metrics.items()}
        )


@dataclass(frozen=True)
class TickState:
    """What a tick hands to the next: consecutive significant ticks per metric, and the
    aggregates at the moment the candidate's cache finished warming (cost and latency are then
    compared on what came after)."""

    consecutive: Mapping[str, int] = field(default_factory=dict)
    warmup_seen: bool = False
    warm_since_seconds: float | None = None
    warm_snapshot: tuple[ArmAggregates, ArmAggregates] | None = None


@dataclass(frozen=True)
class MetricResult:
    name: str
    label: str
    status: MetricStatus
    acting: bool
    critical: bool
    n_canary: int
    n_control: int
    scorer_errors: tuple[int, int]
    margin: float | None = None
    comparison: stats.Comparison | None = None
    consecutive: int = 0


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason
    explanation: str
    metrics: tuple[MetricResult, ...]
    srm_p_value: float | None  # the sequential test's, which pauses
    srm_chi_square_p_value: float | None  # the fixed-sample reading of this tick, which holds
    units: tuple[int, int]
    elapsed_seconds: float
    warming: bool
    on_inconclusive: OnInconclusive
    state: TickState
    alpha: float
    alpha_critical: float


# -- Formatting ----------------------------------------------------------------------------------


def _value(guardrail: Guardrail, value: float) -> str:
    if guardrail.kind is Kind.BINARY:
        return f"{100 * value:.1f} %"
    if guardrail.unit == "ms":
        return f"{value:.0f} ms"
    if guardrail.unit == "$":
        return f"${value:.5f}"
    return f"{value:.3g}{guardrail.unit and ' ' + guardrail.unit}"


def _all_acting(count: int) -> str:
    """The acting guardrails, counted as a sentence says them: never "all 1 acting guardrails"."""
    return "the one acting guardrail" if count == 1 else f"all {count} acting guardrails"


def _amount(guardrail: Guardrail, value: float) -> str:
    """A difference: points for proportions, the metric's unit otherwise."""
    if guardrail.kind is Kind.BINARY:
        return f"{100 * value:.1f} points"
    return _value(guardrail, value)


def _margin_text(guardrail: Guardrail, margin: float) -> str:
    if guardrail.kind is Kind.BINARY and not guardrail.relative_margin:
        return f"{100 * margin:g}-point margin"
    if guardrail.relative_margin:
        return f"{100 * guardrail.margin:g} % margin ({_amount(guardrail, margin)})"
    return f"{_amount(guardrail, margin)} margin"


def _describe(result: MetricResult, guardrail: Guardrail) -> str:
    comparison = result.comparison
    assert comparison is not None
    assert result.margin is not None
    if guardrail.source is Source.PAIRED_REPLAY:
        worse_by = _amount(guardrail, comparison.difference)
        lower = _amount(guardrail, comparison.lower)
        return (
            f"{guardrail.label} on {result.n_canary} paired replays, candidate worse by {worse_by} "
            f"beyond the {_margin_text(guardrail, result.margin)}, lower bound {lower} (paired evidence)"
        )
    return (
        f"{guardrail.label} {_value(guardrail, comparison.canary)} vs control "
        f"{_value(guardrail, comparison.control)}, regression of {_amount(guardrail, comparison.difference)} "
        f"beyond the {_margin_text(guardrail, result.margin)}, lower bound "
        f"{_amount(guardrail, comparison.lower)}"
    )


# -- The tick ------------------------------------------------------------------------------------


def _margin(guardrail: Guardrail, control_value: float) -> float:
    return guardrail.margin * abs(control_value) if guardrail.relative_margin else guardrail.margin


def _compare(
    guardrail: Guardrail,
    canary: MetricAggregate,
    control: MetricAggregate,
    *,
    alpha_regression: float,
    policy: Policy,
) -> tuple[stats.Comparison, float]:
    increase_is_bad = guardrail.direction is Direction.INCREASE_IS_BAD
    if guardrail.source is Source.PAIRED_REPLAY:
        comparison = stats.compare_paired(
            stats.Moments(canary.n, canary.total, canary.total_sq),
            increase_is_bad=increase_is_bad,
            margin=guardrail.margin,
            alpha_regression=alpha_regression,
            alpha_promotion=policy.alpha,
        )
        return comparison, guardrail.margin
    if guardrail.kind is Kind.QUANTILE:
        control_estimate = histograms.percentiles(control.histogram, (guardrail.quantile,))[
            guardrail.quantile
        ]
        assert control_estimate is not None
        margin = _margin(guardrail, control_estimate)
        comparison = stats.compare_quantiles(
            canary.histogram,
            control.histogram,
            q=guardrail.quantile,
            increase_is_bad=increase_is_bad,
            margin=margin,
            alpha_regression=alpha_regression,
            alpha_promotion=policy.alpha,
            n_star=policy.n_star,
        )
        return comparison, margin
    binary = guardrail.kind is Kind.BINARY
    control_moments = stats.Moments(control.n, control.total, control.total if binary else control.total_sq)
    canary_moments = stats.Moments(canary.n, canary.total, canary.total if binary else canary.total_sq)
    margin = _margin(guardrail, control_moments.mean)
    comparison = stats.compare_means(
        canary_moments,
        control_moments,
        increase_is_bad=increase_is_bad,
        margin=margin,
        binary=binary,
        alpha_regression=alpha_regression,
        alpha_promotion=policy.alpha,
        n_star=policy.n_star,
        relative_share=guardrail.margin if guardrail.relative_margin else 0.0,
    )
    return comparison, margin


def _observations(aggregate: MetricAggregate, kind: Kind) -> int:
    if kind is Kind.QUANTILE:
        return sum(count for count in aggregate.histogram.values() if count > 0)
    return aggregate.n


def _warming(policy: Policy, canary: ArmAggregates, control: ArmAggregates, elapsed: float) -> bool:
    if canary.cache_hit_ratio is None or control.cache_hit_ratio is None:
        return False
    if elapsed >= policy.warmup_max_seconds:
        return False
    return canary.cache_hit_ratio < control.cache_hit_ratio - policy.warmup_tolerance


def decide(
    *,
    policy: Policy,
    stage: Stage,
    canary: ArmAggregates,
    control: ArmAggregates,
    elapsed_seconds: float,
    previous: TickState | None = None,
) -> Decision:
    """The decision of one tick. Pure and deterministic: the same inputs give the same Decision."""
    previous = previous or TickState()
    at_max = elapsed_seconds >= stage.max_duration_seconds
    units, split = [canary.units, control.units], list(stage.expected_split)
    srm_p = stats.srm_sequential_p_value(units, split)
    srm_chi_square_p = stats.srm_p_value(units, split)

    # Cache warm-up: while the candidate's hit ratio trails the control's, cost and latency are
    # not compared; once it has caught up they are compared on what came after.
    warming = _warming(policy, canary, control, elapsed_seconds)
    state = TickState(
        consecutive=previous.consecutive,
        warmup_seen=previous.warmup_seen or warming,
        warm_since_seconds=previous.warm_since_seconds,
        warm_snapshot=previous.warm_snapshot,
    )
    if state.warmup_seen and not warming and state.warm_snapshot is None:
        state = replace(state, warm_since_seconds=elapsed_seconds, warm_snapshot=(canary, control))

    results: list[MetricResult] = []
    comparable: dict[str, tuple[MetricAggregate, MetricAggregate]] = {}
    for guardrail in policy.guardrails:
        canary_agg, control_agg = canary.metric(guardrail.name), control.metric(guardrail.name)
        if guardrail.cache_sensitive and state.warm_snapshot is not None:
            canary_agg = canary_agg.minus(state.warm_snapshot[0].metric(guardrail.name))
            control_agg = control_agg.minus(state.warm_snapshot[1].metric(guardrail.name))
        n_canary = _observations(canary_agg, guardrail.kind)
        n_control = (
            n_canary
            if guardrail.source is Source.PAIRED_REPLAY
            else _observations(control_agg, guardrail.kind)
        )
        minimum = (
            stage.min_units_per_arm if guardrail.source is Source.TELEMETRY else stage.min_judged_per_arm
        )
        base = MetricResult(
            name=guardrail.name,
            label=guardrail.label,
            status=MetricStatus.INSUFFICIENT_DATA,
            acting=guardrail.may_act,
            critical=guardrail.critical,
            n_canary=n_canary,
            n_control=n_control,
            scorer_errors=(canary_agg.errors, control_agg.errors),
        )
        error_shares = [
            agg.errors / (agg.n + agg.errors) for agg in (canary_agg, control_agg) if agg.n + agg.errors > 0
        ]
        if guardrail.cache_sensitive and warming:
            results.append(replace(base, status=MetricStatus.EXCLUDED_WARMUP))
        elif any(share > policy.max_scorer_error_share for share in error_shares):
            results.append(replace(base, status=MetricStatus.SCORER_ERRORS))
        elif min(n_canary, n_control) < max(2, minimum):
            results.append(base)
        else:
            comparable[guardrail.name] = (canary_agg, control_agg)
            results.append(replace(base, status=MetricStatus.UNDECIDED))

    by_name = {guardrail.name: guardrail for guardrail in policy.guardrails}

    # Levels: critical guardrails alone at alpha_critical; acting non-critical ones in one Holm
    # family at alpha; advisory ones shown at alpha, never acting.
    first_pass: dict[str, tuple[stats.Comparison, float]] = {}
    for name, (canary_agg, control_agg) in comparable.items():
        guardrail = by_name[name]
        level = policy.alpha_critical if guardrail.critical else policy.alpha
        first_pass[name] = _compare(guardrail, canary_agg, control_agg, alpha_regression=level, policy=policy)
    family = {
        name: comparison.p_value
        for name, (comparison, _) in first_pass.items()
        if by_name[name].may_act and not by_name[name].critical
    }
    holm = stats.holm(family, policy.alpha)
    consecutive: dict[str, int] = {}
    for index, result in enumerate(results):
        if result.name not in first_pass:
            continue
        guardrail = by_name[result.name]
        comparison, margin = first_pass[result.name]
        if result.name in holm:
            rejected, level = holm[result.name]
            if level != comparison.alpha_regression:
                releveled = stats.at_regression_level(comparison, level)
                if releveled is None:
                    canary_agg, control_agg = comparable[result.name]
                    comparison, margin = _compare(
                        guardrail, canary_agg, control_agg, alpha_regression=level, policy=policy
                    )
                else:
                    comparison = releveled
            regression = rejected
        else:
            regression = comparison.p_value <= comparison.alpha_regression
        count = previous.consecutive.get(result.name, 0) + 1 if regression and result.acting else 0
        if count:
            consecutive[result.name] = count
        if regression:
            status = MetricStatus.REGRESSION
        elif comparison.non_inferior:
            status = MetricStatus.NON_INFERIOR
        else:
            status = MetricStatus.UNDECIDED
        results[index] = replace(
            result, status=status, margin=margin, comparison=comparison, consecutive=count
        )
    state = replace(state, consecutive=consecutive)

    def decision(action: Action, reason: Reason, explanation: str) -> Decision:
        return Decision(
            action=action,
            reason=reason,
            explanation=explanation,
            metrics=tuple(results),
            srm_p_value=srm_p,
            srm_chi_square_p_value=srm_chi_square_p,
            units=(canary.units, control.units),
            elapsed_seconds=elapsed_seconds,
            warming=warming,
            on_inconclusive=stage.on_inconclusive,
            state=state,
            alpha=policy.alpha,
            alpha_critical=policy.alpha_critical,
        )

    def wait_or_end(reason: Reason, why: str) -> Decision:
        if at_max:
            return decision(Action.INCONCLUSIVE, reason, f"inconclusive at the maximum duration: {why}")
        return decision(Action.EXTEND, reason, f"extended: {why}")

    warm_note = " (cost and latency excluded while the candidate's cache warms)" if warming else ""

    acting = [r for r in results if r.acting]
    critical = [r for r in acting if r.critical and r.status is MetricStatus.REGRESSION]

    def critical_rollback(note: str) -> Decision:
        worst = min(critical, key=lambda r: r.comparison.p_value if r.comparison else 1.0)
        return decision(
            Action.ROLLBACK,
            Reason.CRITICAL_REGRESSION,
            f"rolled back: {_describe(worst, by_name[worst.name])} (critical, α = {policy.alpha_critical:g})"
            f"{note}",
        )

    # 1. Health: a split that is not what was configured makes every comparison suspect, so it
    # voids the evidence for promotion and for a non-critical rollback. The sequential test
    # pauses: read at every tick, its false pauses stay below srm_alpha over the whole stage,
    # where the chi-square read every tick would pause 1-2 % of healthy rollouts. The chi-square
    # alarms sooner, so while it alone sees a mismatch the stage holds (inconclusive at its
    # maximum) instead of promoting on a split the sequential test may yet confirm. Neither
    # holds back a critical guardrail shown regressed (each arm at its minimum): a biased
    # comparison can at worst take a harmless candidate off traffic, the safe direction
    # (docs/analysis.md, "Health").
    chi_square = f"chi-square p = {srm_chi_square_p:.2g}" if srm_chi_square_p is not None else ""
    expected = (
        f"{canary.units} canary vs {control.units} control units against an expected "
        f"{stage.expected_split[0]:g}:{stage.expected_split[1]:g} split"
    )
    enough_units = min(canary.units, control.units) >= stage.min_units_per_arm
    if srm_p is not None and srm_p < policy.srm_alpha:
        mismatch = (
            f"sample-ratio mismatch, {expected} (sequential test p = {srm_p:.2g} < {policy.srm_alpha:g}, "
            f"{chi_square})"
        )
        if critical and enough_units:
            return critical_rollback(f", despite a {mismatch}, which never holds back a critical rollback")
        return decision(Action.PAUSE, Reason.HEALTH_CHECK_FAILED, f"paused: {mismatch}")
    if srm_chi_square_p is not None and srm_chi_square_p < policy.srm_alpha:
        if critical and enough_units:
            return critical_rollback(warm_note)
        why = (
            f"the split looks off at this tick, {expected} ({chi_square} < {policy.srm_alpha:g}; "
            f"the sequential test that pauses has p = {srm_p:.2g}), so nothing is promoted on it"
        )
        if at_max:
            return decision(
                Action.INCONCLUSIVE, Reason.SRM_SUSPECTED, f"inconclusive at the maximum duration: {why}"
            )
        return decision(Action.HOLD, Reason.SRM_SUSPECTED, f"held: {why}")

    # 2. Units: nothing acts on an arm that has (almost) no data.
    if canary.units == 0 and control.units == 0:
        return wait_or_end(Reason.NO_DATA, "no units in either arm, missing data is never a pass")
    if canary.units == 0 or control.units == 0:
        empty = "canary" if canary.units == 0 else "control"
        return wait_or_end(Reason.ONE_ARM_ONLY, f"no units in the {empty} arm, one arm alone is never a pass")
    if min(canary.units, control.units) < stage.min_units_per_arm:
        return wait_or_end(
            Reason.INSUFFICIENT_DATA,
            f"{canary.units} canary and {control.units} control units, "
            f"{stage.min_units_per_arm} needed per arm{warm_note}",
        )

    # 3. Regressions: critical at once, non-critical on consecutive Holm-significant ticks.
    if critical:
        return critical_rollback(warm_note)
    confirmed = [r for r in acting if not r.critical and r.consecutive >= policy.consecutive_ticks]
    if confirmed:
        worst = max(confirmed, key=lambda r: r.consecutive)
        return decision(
            Action.ROLLBACK,
            Reason.REGRESSION,
            f"rolled back: {_describe(worst, by_name[worst.name])}, {worst.consecutive} consecutive ticks"
            f"{warm_note}",
        )
    pending = [r for r in acting if r.status is MetricStatus.REGRESSION]
    if pending:
        first = pending[0]
        return decision(
            Action.HOLD,
            Reason.REGRESSION_UNCONFIRMED,
            f"held: {_describe(first, by_name[first.name])}, {first.consecutive} of "
            f"{policy.consecutive_ticks} consecutive ticks needed{warm_note}",
        )

    # 4. Scorer errors are not failures, but a guardrail that cannot be scored cannot pass.
    errored = [r for r in acting if r.status is MetricStatus.SCORER_ERRORS]
    if errored:
        names = ", ".join(
            f"{r.label} ({r.scorer_errors[0]} canary, {r.scorer_errors[1]} control)" for r in errored
        )
        return decision(
            Action.PAUSE,
            Reason.SCORER_ERRORS,
            f"paused: scorer errors above {100 * policy.max_scorer_error_share:g} % of judged samples: "
            f"{names}",
        )

    # 5. Promotion: every acting guardrail shown non-inferior, after the minimum duration.
    short = [r for r in acting if r.status is MetricStatus.INSUFFICIENT_DATA]
    if short:
        names = ", ".join(f"{r.label} ({r.n_canary} canary, {r.n_control} control)" for r in short)
        return wait_or_end(Reason.INSUFFICIENT_DATA, f"too few observations: {names}{warm_note}")
    if elapsed_seconds < stage.min_duration_seconds:
        return decision(
            Action.HOLD,
            Reason.MIN_DURATION_NOT_MET,
            f"held: {elapsed_seconds / 60:.0f} of {stage.min_duration_seconds / 60:.0f} minutes "
            f"minimum{warm_note}",
        )
    excluded = [r for r in acting if r.status is MetricStatus.EXCLUDED_WARMUP]
    if excluded:
        names = ", ".join(r.label for r in excluded)
        why = f"candidate cache still warming, {names} not yet comparable"
        if at_max:
            return decision(
                Action.INCONCLUSIVE, Reason.CACHE_WARMUP, f"inconclusive at the maximum duration: {why}"
            )
        return decision(Action.HOLD, Reason.CACHE_WARMUP, f"held: {why}")
    undecided = [r for r in acting if r.status is not MetricStatus.NON_INFERIOR]
    if not undecided:
        since = (
            f"; cost and latency compared since the cache warmed at {state.warm_since_seconds / 60:.0f} min"
            if state.warm_since_seconds is not None
            else ""
        )
        paired = "".join(
            f"; {r.label} on {r.n_canary} paired replays (paired evidence)"
            for r in acting
            if by_name[r.name].source is Source.PAIRED_REPLAY
        )
        return decision(
            Action.PROMOTE,
            Reason.NON_INFERIOR,
            f"promoted: {_all_acting(len(acting))} shown non-inferior "
            f"(every upper bound below its margin, α = {policy.alpha:g}) after "
            f"{elapsed_seconds / 60:.0f} min, {canary.units} canary and {control.units} control units"
            f"{since}{paired}",
        )
    names = ", ".join(
        f"{r.label} (upper bound {_amount(by_name[r.name], r.comparison.upper)} vs margin "
        f"{_amount(by_name[r.name], r.margin)})"
        for r in undecided
        if r.comparison is not None and r.margin is not None and math.isfinite(r.comparison.upper)
    ) or ", ".join(r.label for r in undecided)
    if at_max:
        return decision(
            Action.INCONCLUSIVE,
            Reason.MAX_DURATION_REACHED,
            f"inconclusive at the maximum duration: not yet shown non-inferior: {names}",
        )
    return decision(Action.HOLD, Reason.AWAITING_EVIDENCE, f"held: not yet shown non-inferior: {names}")


# -- Experiments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmVerdict:
    arm: str
    passes: bool
    failing: tuple[str, ...]  # guardrails not shown non-inferior (or over budget)
    comparisons: Mapping[str, stats.Comparison]
    cost: float | None
    goals: Mapping[str, tuple[float, bool]]  # goal -> (BH-adjusted p-value, significant)


@dataclass(frozen=True)
class ExperimentConclusion:
    srm_p_value: float | None  # the sequential test's, which pauses
    srm_chi_square_p_value: float | None  # this reading's chi-square, which keeps arms from passing
    health_ok: bool
    arms: tuple[ArmVerdict, ...]
    cheapest_passing: str | None
    evidence: str


def conclude_experiment(
    *,
    policy: Policy,
    baseline: ArmAggregates,
    arms: Mapping[str, ArmAggregates],
    weights: Mapping[str, float],
    cost_metric: str,
    goals: tuple[Guardrail, ...] = (),
    min_per_arm: int = 2,
) -> ExperimentConclusion:
    """Which candidate arms pass every acting guardrail against the baseline, and the cheapest.

    An arm passes when each acting guardrail is shown non-inferior (upper bound below the
    margin) and, for a guardrail with a budget, the arm's upper bound is within the budget.
    Goal metrics are two-sided anytime-valid tests, Benjamini-Hochberg across arms × goals
    (GrowthBook applies the correction to goals only). `weights` holds every arm's share,
    baseline included under the key "baseline".
    """
    names = list(arms)
    units = [baseline.units, *(arms[name].units for name in names)]
    split = [weights["baseline"], *(weights[name] for name in names)]
    # The sequential test pauses (valid at every tick); the chi-square of this reading, which
    # alarms sooner, keeps every arm from passing while it sees a mismatch (as in `decide`).
    srm_p = stats.srm_sequential_p_value(units, split)
    srm_chi_square_p = stats.srm_p_value(units, split)
    health_ok = srm_p is None or srm_p >= policy.srm_alpha
    split_ok = health_ok and (srm_chi_square_p is None or srm_chi_square_p >= policy.srm_alpha)
    goal_p: dict[str, float] = {}
    for name in names:
        for goal in goals:
            canary_agg, control_agg = arms[name].metric(goal.name), baseline.metric(goal.name)
            if min(canary_agg.n, control_agg.n) < max(2, min_per_arm):
                continue
            binary = goal.kind is Kind.BINARY
            goal_p[f"{name}\x00{goal.name}"] = stats.two_sided_difference_p_value(
                stats.Moments(
                    canary_agg.n, canary_agg.total, canary_agg.total if binary else canary_agg.total_sq
                ),
                stats.Moments(
                    control_agg.n, control_agg.total, control_agg.total if binary else control_agg.total_sq
                ),
                binary=binary,
                n_star=policy.n_star,
            )
    bh = stats.benjamini_hochberg(goal_p, policy.alpha)
    verdicts: list[ArmVerdict] = []
    for name in names:
        arm = arms[name]
        comparisons: dict[str, stats.Comparison] = {}
        failing: list[str] = []
        for guardrail in policy.guardrails:
            canary_agg, control_agg = arm.metric(guardrail.name), baseline.metric(guardrail.name)
            enough = min(
                _observations(canary_agg, guardrail.kind), _observations(control_agg, guardrail.kind)
            )
            if enough < max(2, min_per_arm):
                if guardrail.may_act:
                    failing.append(guardrail.name)
                continue
            comparison, _ = _compare(
                guardrail, canary_agg, control_agg, alpha_regression=policy.alpha, policy=policy
            )
            comparisons[guardrail.name] = comparison
            if not guardrail.may_act:
                continue
            over_budget = False
            if guardrail.budget is not None and guardrail.kind is Kind.QUANTILE:
                bounds = stats.quantile_bounds(
                    canary_agg.histogram, q=guardrail.quantile, alpha=policy.alpha, n_star=policy.n_star / 2
                )
                over_budget = bounds.upper > guardrail.budget
            if not comparison.non_inferior or over_budget:
                failing.append(guardrail.name)
        cost = arm.metric(cost_metric)
        verdicts.append(
            ArmVerdict(
                arm=name,
                passes=split_ok and not failing,
                failing=tuple(failing),
                comparisons=comparisons,
                cost=cost.total / cost.n if cost.n else None,
                goals={
                    goal.name: (bh[key][1], bh[key][0])
                    for goal in goals
                    if (key := f"{name}\x00{goal.name}") in bh
                },
            )
        )
    passing = [v for v in verdicts if v.passes and v.cost is not None]
    if not split_ok:
        return ExperimentConclusion(
            srm_p_value=srm_p,
            srm_chi_square_p_value=srm_chi_square_p,
            health_ok=health_ok,
            arms=tuple(verdicts),
            cheapest_passing=None,
            evidence=(
                f"no arm can pass: sample-ratio mismatch (sequential test p = {srm_p:.2g}, "
                f"chi-square p = {srm_chi_square_p:.2g})"
            ),
        )
    if not passing:
        return ExperimentConclusion(
            srm_p_value=srm_p,
            srm_chi_square_p_value=srm_chi_square_p,
            health_ok=True,
            arms=tuple(verdicts),
            cheapest_passing=None,
            evidence="no arm was shown non-inferior on every acting guardrail",
        )
    cheapest = min(passing, key=lambda v: v.cost or 0.0)
    baseline_cost = baseline.metric(cost_metric)
    evidence = f"{cheapest.arm}: cost per call ${cheapest.cost:.5f}"
    if baseline_cost.n:
        evidence += f" vs baseline ${baseline_cost.total / baseline_cost.n:.5f}"
    cost_comparison = cheapest.comparisons.get(cost_metric)
    if cost_comparison is not None:
        evidence += f" (difference upper bound ${cost_comparison.upper:.5f} per call)"
    evidence += f"; non-inferior on {_all_acting(sum(1 for g in policy.guardrails if g.may_act))}"
    others = sorted((v for v in passing if v is not cheapest), key=lambda v: v.cost or 0.0)
    if others:
        evidence += f"; next cheapest passing arm {others[0].arm} at ${others[0].cost:.5f}"
    return ExperimentConclusion(
        srm_p_value=srm_p,
        srm_chi_square_p_value=srm_chi_square_p,
        health_ok=True,
        arms=tuple(verdicts),
        cheapest_passing=cheapest.arm,
        evidence=evidence,
    )
