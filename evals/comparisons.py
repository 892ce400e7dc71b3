"""The cheapest that passes: candidate versions side by side on one eval set version.

Per candidate: its latest finished run's pass rate with the Wilson 95 % interval (an errored case
counts as not passed, as the gate counts it), the paired difference to the serving version on
the same cases (Tango's interval, `evals/stats.py`), cost per 1,000 calls projected from the
run's measured tokens at today's prices (with and without cache hits), p95 latency, where it
stands with the gate, and the counterfactual cost on the flag's logged calls of the last 7 days
(telemetry's per-minute rollups, re-priced; see `evals/cost_projection.py`). The winner is the
cheapest candidate with a current passing verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Sum

from controlplane.errors import InvalidInput
from evals import cost_projection, stats
from evals.cost_projection import Counterfactual, Projection, Rates, TokenTotals
from evals.lookups import find_eval_set_version
from evals.models import EvalRun, EvalSetVersion, GatePolicy, RunCase, RunState
from evals.services.gate import GateStatus, gate_eval_set_version, gate_status, p95
from flags.lookups import get_environment, get_version
from flags.models import ConfigVersion, Environment, Flag, FlagState
from telemetry.models import Rollup
from telemetry.price_table import cached_price_table
from telemetry.pricing import PriceTable, TokenCounts

LOGGED_WINDOW = timedelta(days=7)
MAX_CANDIDATES = 8
ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING, RunState.PAUSED)


@dataclass(frozen=True, slots=True)
class PairedDifference:
    pairs: int
    difference: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Row:
    version: ConfigVersion
    model: str
    is_serving: bool
    run: EvalRun | None
    active_run: EvalRun | None
    n: int
    passed: int
    interval: tuple[float, float] | None
    paired: PairedDifference | None
    projection: Projection | None
    p95_latency_ms: float | None
    gate: GateStatus
    counterfactual: Counterfactual | None
    counterfactual_note: str

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.n if self.n else None

    @property
    def passes(self) -> bool:
        """A current passing verdict: an Approver's override lets a version through, it does
        not make it pass."""
        verdict = self.gate.verdict
        return self.gate.required and verdict is not None and verdict.passed and self.gate.admits


@dataclass(frozen=True, slots=True)
class Comparison:
    flag: Flag
    eval_set_version: EvalSetVersion
    environment: Environment | None
    serving: ConfigVersion | None
    rows: list[Row]
    winner: Row | None
    evidence: str
    logged: TokenTotals
    serving_needs_run: bool

    @property
    def needing_runs(self) -> list[ConfigVersion]:
        """Versions without a finished or running run: the candidates, and the serving version
        (the paired difference and the counterfactual need its run)."""
        versions = [row.version for row in self.rows if row.run is None and row.active_run is None]
        if self.serving_needs_run and self.serving is not None:
            versions.append(self.serving)
        return versions

    @property
    def running(self) -> bool:
        return any(row.active_run is not None for row in self.rows)


def default_environment(flag: Flag) -> Environment | None:
    """The first environment (by key) that serves the flag."""
    state = (
        FlagState.objects.select_related("environment")
        .filter(flag=flag, serving_version__isnull=False)
        .order_by("environment__key")
        .first()
    )
    return state.environment if state else None


def default_eval_set_version(flag: Flag) -> EvalSetVersion | None:
    """The gate's eval set version, or the latest version a run of the flag used."""
    policy = GatePolicy.objects.select_related("eval_set", "pinned_version").filter(flag=flag).first()
    if policy is not None:
        return gate_eval_set_version(policy)
    run = EvalRun.objects.select_related("eval_set_version__eval_set").filter(flag=flag).first()
    return run.eval_set_version if run else None


def default_candidates(flag: Flag, eval_set_version: EvalSetVersion) -> list[ConfigVersion]:
    """The versions with a run on this eval set version, newest first."""
    numbers = (
        EvalRun.objects.filter(flag=flag, eval_set_version=eval_set_version, config_version__isnull=False)
        .values_list("config_version_id", flat=True)
        .distinct()
    )
    return list(ConfigVersion.objects.filter(pk__in=numbers).order_by("-number")[:MAX_CANDIDATES])


def compare(
    *,
    flag: Flag,
    eval_set_version: EvalSetVersion,
    versions: Sequence[ConfigVersion],
    environment: Environment | None,
    now: datetime,
) -> Comparison:
    serving = _serving(flag, environment)
    serving_run = _latest(serving, eval_set_version) if serving else None
    serving_cases = _cases(serving_run) if serving_run else None
    serving_tokens = _measured(serving_run) if serving_run else None
    groups = _logged_by_model(flag, environment, now)
    logged = _sum_groups(groups)
    table = cached_price_table()
    today = now.date()
    logged_standard = _standard_pico(groups, table, today)
    logged_cost = sum(cost for _, _, cost in groups)
    rows = []
    for version in versions:
        run = _latest(version, eval_set_version)
        active = (
            EvalRun.objects.filter(
                config_version=version, eval_set_version=eval_set_version, state__in=ACTIVE_STATES
            )
            .order_by("-created_at")
            .first()
        )
        model = str(version.content.get("model", ""))
        cases = _cases(run) if run else {}
        n, passed = len(cases), sum(ok for ok, _ in cases.values())
        measured = _measured(run) if run else None
        rates = _rates(table, model, today, measured)
        projection = cost_projection.project(measured, rates) if measured and rates else None
        counterfactual, note = _counterfactual(
            measured, serving_tokens, rates, logged, logged_cost, logged_standard, projection
        )
        rows.append(
            Row(
                version=version,
                model=model,
                is_serving=serving is not None and serving.pk == version.pk,
                run=run,
                active_run=active,
                n=n,
                passed=passed,
                interval=stats.wilson_interval(passed, n) if n else None,
                paired=_paired(cases, serving_cases) if serving_cases is not None and run else None,
                projection=projection,
                p95_latency_ms=p95([latency for _, latency in cases.values() if latency is not None]),
                gate=gate_status(flag=flag, version=version, environment=environment),
                counterfactual=counterfactual,
                counterfactual_note=note,
            )
        )
    winner = _winner(rows)
    serving_listed = any(row.is_serving for row in rows)
    serving_needs_run = (
        serving is not None
        and not serving_listed
        and serving_run is None
        and _active(serving, eval_set_version) is None
    )
    return Comparison(
        flag,
        eval_set_version,
        environment,
        serving,
        rows,
        winner,
        _evidence(winner, rows),
        logged,
        serving_needs_run,
    )


def _serving(flag: Flag, environment: Environment | None) -> ConfigVersion | None:
    if environment is None:
        return None
    state = FlagState.objects.current(flag, environment)
    return state.serving_version if state else None


def _latest(version: ConfigVersion, eval_set_version: EvalSetVersion) -> EvalRun | None:
    return (
        EvalRun.objects.filter(
            config_version=version, eval_set_version=eval_set_version, state=RunState.SUCCEEDED
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def _active(version: ConfigVersion, eval_set_version: EvalSetVersion) -> EvalRun | None:
    return (
        EvalRun.objects.filter(
            config_version=version, eval_set_version=eval_set_version, state__in=ACTIVE_STATES
        )
        .order_by("-created_at")
        .first()
    )


def _cases(run: EvalRun) -> dict[int, tuple[bool, int | None]]:
    """case id -> (passed, latency); an errored case is not passed."""
    rows = RunCase.objects.filter(run=run).values_list("case_id", "passed", "output__latency_ms")
    return {case_id: (passed is True, latency) for case_id, passed, latency in rows}


def _measured(run: EvalRun) -> TokenTotals:
    usages = RunCase.objects.filter(run=run, output__isnull=False).values_list("output__usage", flat=True)
    return TokenTotals.of(cost_projection.usage_tokens(usage or {}) for usage in usages)


def _rates(table: PriceTable, model: str, on: date, measured: TokenTotals | None) -> Rates | None:
    prompt = int(measured.prompt_per_call or 0) if measured else 0
    return table.pico_per_token(model=model, on=on, prompt_tokens=prompt)


def _paired(
    cases: dict[int, tuple[bool, int | None]], serving: dict[int, tuple[bool, int | None]]
) -> PairedDifference | None:
    common = cases.keys() & serving.keys()
    if not common:
        return None
    candidate_only = sum(cases[i][0] and not serving[i][0] for i in common)
    baseline_only = sum(serving[i][0] and not cases[i][0] for i in common)
    # The margin only moves the test, not the interval; the gate's own margin decides there.
    result = stats.paired_noninferiority(
        candidate_only=candidate_only, baseline_only=baseline_only, n=len(common), margin=0.0
    )
    return PairedDifference(len(common), result.difference, result.lower, result.upper)


def _logged_by_model(
    flag: Flag, environment: Environment | None, now: datetime
) -> list[tuple[str, TokenTotals, int]]:
    """(model, token totals, billed micro-USD) of the flag's logged calls in the window."""
    if environment is None:
        return []
    sums = (
        Rollup.objects.for_flag(flag.pk)
        .between(now - LOGGED_WINDOW, now)
        .filter(environment=environment)
        .values("model")
        .annotate(
            n=Sum("calls"),
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cache_write_5m=Sum("cache_write_5m_tokens"),
            cache_write_1h=Sum("cache_write_1h_tokens"),
            cache_read=Sum("cache_read_tokens"),
            cost=Sum("cost_micro_usd"),
        )
        .order_by("model")
    )
    return [
        (
            row["model"],
            TokenTotals(
                int(row["n"] or 0),
                TokenCounts(
                    input=int(row["input"] or 0),
                    output=int(row["output"] or 0),
                    cache_write_5m=int(row["cache_write_5m"] or 0),
                    cache_write_1h=int(row["cache_write_1h"] or 0),
                    cache_read=int(row["cache_read"] or 0),
                ),
            ),
            int(row["cost"] or 0),
        )
        for row in sums
    ]


def _sum_groups(groups: list[tuple[str, TokenTotals, int]]) -> TokenTotals:
    calls = sum(totals.calls for _, totals, _ in groups)
    summed = TokenTotals.of(totals.tokens for _, totals, _ in groups)
    return TokenTotals(calls, summed.tokens)


def _standard_pico(groups: list[tuple[str, TokenTotals, int]], table: PriceTable, on: date) -> int | None:
    """The logged tokens at their own models' standard prices; None when one cannot be priced."""
    total = 0
    for model, totals, _ in groups:
        rates = _rates(table, model, on, totals)
        cost = cost_projection.cost_pico(totals.tokens, rates) if rates else None
        if cost is None:
            return None
        total += cost
    return total


def _counterfactual(
    measured: TokenTotals | None,
    serving: TokenTotals | None,
    rates: Rates | None,
    logged: TokenTotals,
    logged_cost: int,
    logged_standard: int | None,
    projection: Projection | None,
) -> tuple[Counterfactual | None, str]:
    if measured is None or projection is None or rates is None:
        return None, "needs a finished run with a priced model"
    if logged.calls == 0:
        return None, "no logged calls in the last 7 days"
    if serving is None:
        return None, "needs a finished run of the serving version on these cases"
    factor = cost_projection.output_factor(measured, serving)
    if factor is None:
        return None, "the runs measured no tokens"
    return (
        cost_projection.counterfactual(
            logged=logged,
            logged_cost_micro_usd=logged_cost,
            logged_standard_pico=logged_standard,
            rates=rates,
            factor=factor,
            measured=measured,
            projection=projection,
        ),
        "",
    )


def _winner(rows: list[Row]) -> Row | None:
    priced = [
        row for row in rows if row.passes and row.projection and row.projection.per_1000_micro_usd is not None
    ]
    return min(priced, key=_cost_order, default=None)


def _cost_order(row: Row) -> tuple[int, int]:
    """Cheapest first; between equal costs, the older version (fewer changes to review)."""
    assert row.projection is not None
    assert row.projection.per_1000_micro_usd is not None
    return row.projection.per_1000_micro_usd, row.version.number


def usd(micro_usd: int | float | None) -> str:
    if micro_usd is None:
        return "unknown"
    return f"${micro_usd / 1_000_000:,.4f}"


def _evidence(winner: Row | None, rows: list[Row]) -> str:
    if winner is None:
        return "No candidate has a current passing gate verdict with a known cost yet."
    assert winner.projection is not None
    others = [
        f"v{row.version.number} {usd(row.projection.per_1000_micro_usd)}"
        + ("" if row.passes else " (does not pass)")
        for row in rows
        if row is not winner and row.projection is not None
    ]
    against = f", against {', '.join(others)}" if others else ""
    verdict = winner.gate.verdict
    explanation = verdict.evidence.get("explanation", "") if verdict else ""
    return (
        f"v{winner.version.number} ({winner.model}) is the cheapest that passes: "
        f"{usd(winner.projection.per_1000_micro_usd)} per 1,000 calls projected from its eval run"
        f"{against}. {explanation}"
    ).strip()


@dataclass(frozen=True, slots=True)
class ComparisonInputs:
    eval_set_version: EvalSetVersion
    versions: list[ConfigVersion]
    environment: Environment | None


def comparison_inputs(flag: Flag, params: Mapping[str, str]) -> ComparisonInputs:
    """Read `eval_set`, `eval_set_version`, `versions` (comma-separated numbers) and `environment`
    from query parameters; each one left out takes its default. 400 naming the parameter, 404
    for what does not exist."""
    environment_key = params.get("environment", "").strip()
    environment = get_environment(environment_key) if environment_key else default_environment(flag)
    eval_set_key = params.get("eval_set", "").strip()
    number = _numbers(params, "eval_set_version", most=1)
    if eval_set_key:
        eval_set_version = find_eval_set_version(eval_set_key, number[0] if number else None)
    else:
        found = default_eval_set_version(flag)
        if found is None:
            raise InvalidInput(
                f"Flag '{flag.key}' has no gate policy and no eval run: name an eval set.",
                errors=[{"path": "eval_set", "message": "Required: no default eval set for this flag."}],
            )
        eval_set_version = find_eval_set_version(found.eval_set.key, number[0]) if number else found
    numbers = _numbers(params, "versions", most=MAX_CANDIDATES)
    if numbers:
        versions = [get_version(flag, n) for n in dict.fromkeys(numbers)]
    else:
        versions = default_candidates(flag, eval_set_version)
    return ComparisonInputs(eval_set_version, versions, environment)


def _numbers(params: Mapping[str, str], name: str, *, most: int) -> list[int]:
    raw = params.get(name, "").strip()
    if not raw:
        return []
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise InvalidInput(
            f"'{name}' must be version numbers separated by commas.",
            errors=[{"path": name, "message": f"'{raw}' is not a list of whole numbers of 1 or more."}],
        )
    if len(parts) > most:
        raise InvalidInput(
            f"'{name}' names {len(parts)} versions; at most {most}.",
            errors=[{"path": name, "message": f"At most {most}."}],
        )
    return [int(part) for part in parts]
