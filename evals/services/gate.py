"""The eval gate: a flag's policy, the stored verdict per (version, eval set version, policy),
the Approver's override, and the check flags' publishing asks before a version reaches traffic.

A verdict compares the candidate's latest finished run with the serving version's run on the
same eval set version: the candidate's pass rate must clear the policy (its Wilson lower bound,
not the point estimate), it must be non-inferior to the serving version on the same cases
(pass/fail by Tango's paired score test, mean score by a paired bootstrap, both with margin δ),
and it must keep under the cost and p95 latency ceilings. Missing data is never a pass: an
errored case counts as not passed, an unknown cost fails a cost ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput, NotFound
from controlplane.models import AuditEntry
from evals import stats
from evals.models import EvalRun, EvalSet, EvalSetVersion, GatePolicy, GateVerdict, RunCase, VersionPolicy
from evals.models.runs import RunState
from flags.models import ConfigVersion, Environment, Flag, FlagState
from flags.services import preconditions
from flagstaff.canonical import content_hash

CHECK_NAME = "eval-gate"
DEFAULT_MARGIN = 0.02


def policy_fields(policy: GatePolicy) -> dict[str, Any]:
    """The policy as judged: what a verdict's key hashes and its evidence shows."""
    return {
        "eval_set": policy.eval_set.key,
        "version_policy": policy.version_policy,
        "pinned_version": policy.pinned_version.number if policy.pinned_version else None,
        "required_pass_rate": policy.required_pass_rate,
        "margin": policy.margin,
        "max_cost_per_case_micro_usd": policy.max_cost_per_case_micro_usd,
        "max_p95_latency_ms": policy.max_p95_latency_ms,
    }


def policy_hash(policy: GatePolicy) -> str:
    return content_hash(policy_fields(policy))


def gate_eval_set_version(policy: GatePolicy) -> EvalSetVersion | None:
    """The eval set version the policy judges on now: the pinned one, or the set's latest."""
    if policy.version_policy == VersionPolicy.PINNED:
        return policy.pinned_version
    return EvalSetVersion.objects.filter(eval_set=policy.eval_set).order_by("-number").first()


@transaction.atomic
def set_gate_policy(
    *,
    flag: Flag,
    eval_set_key: str,
    required_pass_rate: float,
    pinned_version: int | None = None,
    margin: float = DEFAULT_MARGIN,
    max_cost_per_case_micro_usd: int | None = None,
    max_p95_latency_ms: int | None = None,
    actor: Actor,
    reason: str = "",
) -> GatePolicy:
    """Create or replace the flag's gate policy; `pinned_version` None follows the latest version."""
    errors = []
    eval_set = EvalSet.objects.filter(key=eval_set_key).first()
    if eval_set is None:
        errors.append({"path": "eval_set", "message": f"no eval set with key '{eval_set_key}'"})
    pinned = None
    if eval_set is not None and pinned_version is not None:
        pinned = EvalSetVersion.objects.filter(eval_set=eval_set, number=pinned_version).first()
        if pinned is None:
            errors.append(
                {"path": "pinned_version", "message": f"'{eval_set_key}' has no version {pinned_version}"}
            )
    if not 0 <= required_pass_rate <= 1:
        errors.append({"path": "required_pass_rate", "message": "must be a share from 0 to 1"})
    if not 0 <= margin < 1:
        errors.append({"path": "margin", "message": "must be a share from 0 to 1 (0.02 is 2 points)"})
    if max_cost_per_case_micro_usd is not None and max_cost_per_case_micro_usd < 0:
        errors.append({"path": "max_cost_per_case_micro_usd", "message": "must not be negative"})
    if max_p95_latency_ms is not None and max_p95_latency_ms < 1:
        errors.append({"path": "max_p95_latency_ms", "message": "must be at least 1"})
    if errors:
        raise InvalidInput("The gate policy is not valid.", errors=errors)
    assert eval_set is not None
    existing = GatePolicy.objects.select_for_update().filter(flag=flag).first()
    before = policy_fields(existing) if existing else None
    policy = existing or GatePolicy(flag=flag)
    policy.eval_set = eval_set
    policy.version_policy = VersionPolicy.PINNED if pinned else VersionPolicy.LATEST
    policy.pinned_version = pinned
    policy.required_pass_rate = required_pass_rate
    policy.margin = margin
    policy.max_cost_per_case_micro_usd = max_cost_per_case_micro_usd
    policy.max_p95_latency_ms = max_p95_latency_ms
    policy.save()
    audit.record(
        actor=actor,
        action="gate.policy_set",
        target=policy,
        changes={"before": before, "after": policy_fields(policy)},
        reason=reason,
        flag_key=flag.key,
    )
    return policy


@transaction.atomic
def remove_gate_policy(*, flag: Flag, actor: Actor, reason: str = "") -> None:
    policy = GatePolicy.objects.select_for_update().filter(flag=flag).first()
    if policy is None:
        raise NotFound(f"Flag '{flag.key}' has no gate policy.")
    before = policy_fields(policy)
    audit.record(
        actor=actor,
        action="gate.policy_removed",
        target=policy,
        changes={"before": before},
        reason=reason,
        flag_key=flag.key,
    )
    policy.delete()


def _latest_run(version: ConfigVersion, eval_set_version: EvalSetVersion) -> EvalRun | None:
    runs = EvalRun.objects.filter(
        config_version=version, eval_set_version=eval_set_version, state=RunState.SUCCEEDED
    )
    return runs.order_by("-finished_at", "-id").first()


def _describe(eval_set_version: EvalSetVersion) -> str:
    return f"eval set '{eval_set_version.eval_set.key}' v{eval_set_version.number}"


def _serving(flag: Flag, environment: Environment | None) -> ConfigVersion | None:
    if environment is None:
        return None
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    return state.serving_version if state else None


@transaction.atomic
def evaluate_gate(
    *, flag: Flag, version: ConfigVersion, environment: Environment | None, actor: Actor
) -> GateVerdict:
    """Judge `version` against the policy and the version `environment` serves; store the verdict.

    Judging again replaces the stored verdict of the same key (new runs, a new serving version);
    an override given to the old evidence does not carry over to the new.
    """
    policy = GatePolicy.objects.select_related("eval_set", "pinned_version").filter(flag=flag).first()
    if policy is None:
        raise Conflict(
            f"Flag '{flag.key}' has no gate policy; publishing needs no verdict.", code="no_gate_policy"
        )
    eval_set_version = gate_eval_set_version(policy)
    if eval_set_version is None:
        raise Conflict(
            f"Eval set '{policy.eval_set.key}' has no version yet.",
            code="eval_set_empty",
            extra={"missing": [f"a version of eval set '{policy.eval_set.key}'"]},
        )
    baseline = _serving(flag, environment)
    if baseline is not None and baseline.pk == version.pk:
        baseline = None
    run = _latest_run(version, eval_set_version)
    baseline_run = _latest_run(baseline, eval_set_version) if baseline else None
    missing = []
    if run is None:
        missing.append(f"a finished run of v{version.number} on {_describe(eval_set_version)}")
    if baseline is not None and baseline_run is None:
        missing.append(f"a finished run of serving v{baseline.number} on {_describe(eval_set_version)}")
    if missing:
        raise Conflict(
            "The gate needs " + " and ".join(missing) + ".", code="run_required", extra={"missing": missing}
        )
    assert run is not None
    evidence = judge(
        policy=policy,
        version=version,
        run=run,
        baseline=baseline,
        baseline_run=baseline_run,
        eval_set_version=eval_set_version,
        environment=environment,
    )
    key = {
        "config_version": version,
        "eval_set_version": eval_set_version,
        "policy_hash": policy_hash(policy),
    }
    verdict = GateVerdict.objects.select_for_update().filter(**key).first() or GateVerdict(**key)
    verdict.policy = policy_fields(policy)
    verdict.passed = evidence["passed"]
    verdict.evidence = evidence
    verdict.run = run
    verdict.baseline_run = baseline_run
    verdict.override_by, verdict.override_reason, verdict.overridden_at = "", "", None
    verdict.save()
    audit.record(
        actor=actor,
        action="gate.evaluated",
        target=verdict,
        changes={"version": version.number, "passed": verdict.passed, "explanation": evidence["explanation"]},
        flag_key=flag.key,
        environment_key=environment.key if environment else "",
    )
    return verdict


@transaction.atomic
def override_verdict(*, verdict: GateVerdict, reason: str, actor: Actor) -> GateVerdict:
    """An Approver lets a failed verdict through; the verdict and its evidence stay as judged."""
    if not reason.strip():
        raise InvalidInput(
            "An override needs a reason.", errors=[{"path": "reason", "message": "must not be blank"}]
        )
    verdict = (
        GateVerdict.objects.select_for_update().select_related("config_version__flag").get(pk=verdict.pk)
    )
    if verdict.passed:
        raise Conflict("The verdict passed; there is nothing to override.", code="verdict_passed")
    if verdict.is_overridden:
        raise Conflict(
            f"The verdict was already overridden by {verdict.override_by}.", code="already_overridden"
        )
    verdict.override_by, verdict.override_reason, verdict.overridden_at = actor.name, reason, timezone.now()
    verdict.save(update_fields=["override_by", "override_reason", "overridden_at"])
    audit.record(
        actor=actor,
        action="gate.overridden",
        target=verdict,
        changes={
            "version": verdict.config_version.number,
            "explanation": verdict.evidence.get("explanation", ""),
        },
        reason=reason,
        flag_key=verdict.config_version.flag.key,
    )
    return verdict


# --- judging ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Case:
    passed: bool
    score: float
    errored: bool
    cost: int | None
    latency: int | None


def _cases(run: EvalRun) -> dict[int, _Case]:
    rows = RunCase.objects.filter(run=run).values_list(
        "case_id", "passed", "score", "error", "output__cost_micro_usd", "output__latency_ms"
    )
    return {
        case_id: _Case(passed is True, score or 0.0, passed is None or bool(error), cost, latency)
        for case_id, passed, score, error, cost, latency in rows
    }


def p95(values: list[int]) -> float | None:
    """The 95th percentile, interpolated between order statistics (Hyndman & Fan 1996, type 7)."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, 95))


def _pct(share: float) -> str:
    return f"{share * 100:.1f} %"


def _points(share: float) -> str:
    return f"{share * 100:+.1f} points"


def judge(
    *,
    policy: GatePolicy,
    version: ConfigVersion,
    run: EvalRun,
    baseline: ConfigVersion | None,
    baseline_run: EvalRun | None,
    eval_set_version: EvalSetVersion,
    environment: Environment | None,
) -> dict[str, Any]:
    """The verdict's evidence: every number the decision used, and one sentence saying why."""
    cases = _cases(run)
    n = len(cases)
    passed = sum(case.passed for case in cases.values())
    low, high = stats.wilson_interval(passed, n)
    failures: list[str] = []
    pass_rate = {
        "n": n,
        "passed": passed,
        "errors": sum(case.errored for case in cases.values()),
        "rate": passed / n if n else None,
        "lower": low,
        "upper": high,
        "required": policy.required_pass_rate,
        "ok": n > 0 and low >= policy.required_pass_rate,
    }
    if not pass_rate["ok"]:
        failures.append(
            f"the pass rate's 95 % lower bound {_pct(low)} ({passed} of {n} cases) is below the required "
            f"{_pct(policy.required_pass_rate)}"
        )
    evidence: dict[str, Any] = {
        "version": version.number,
        "eval_set": eval_set_version.eval_set.key,
        "eval_set_version": eval_set_version.number,
        "environment": environment.key if environment else None,
        "run": run.pk,
        "pass_rate": pass_rate,
    }
    evidence["non_inferiority"] = _non_inferiority(policy, cases, baseline, baseline_run, failures)
    evidence["cost_per_case"] = _ceiling(
        "cost per case",
        [case.cost for case in cases.values()],
        policy.max_cost_per_case_micro_usd,
        lambda values: sum(values) / len(values),
        "µ$",
        failures,
    )
    evidence["p95_latency_ms"] = _ceiling(
        "p95 latency",
        [case.latency for case in cases.values()],
        policy.max_p95_latency_ms,
        lambda values: p95(values) or 0.0,
        "ms",
        failures,
    )
    evidence["passed"] = not failures
    evidence["explanation"] = _explain(version, baseline, pass_rate, policy, failures)
    return evidence


def _non_inferiority(
    policy: GatePolicy,
    cases: dict[int, _Case],
    baseline: ConfigVersion | None,
    baseline_run: EvalRun | None,
    failures: list[str],
) -> dict[str, Any]:
    if baseline is None or baseline_run is None:
        return {
            "skipped": "Nothing else is served, so there is no version to be non-inferior to.",
            "ok": True,
        }
    baseline_cases = _cases(baseline_run)
    pairs = [(cases[case_id], baseline_cases[case_id]) for case_id in cases.keys() & baseline_cases.keys()]
    candidate_only = sum(c.passed and not b.passed for c, b in pairs)
    baseline_only = sum(b.passed and not c.passed for c, b in pairs)
    proportions = stats.paired_noninferiority(
        candidate_only=candidate_only, baseline_only=baseline_only, n=len(pairs), margin=policy.margin
    )
    scores = stats.paired_bootstrap(
        [c.score for c, _ in pairs], [b.score for _, b in pairs], margin=policy.margin
    )
    if not proportions.non_inferior:
        failures.append(
            f"its pass rate may be more than {policy.margin * 100:.1f} points below "
            f"serving v{baseline.number} "
            f"(difference {_points(proportions.difference)}, lower bound {_points(proportions.lower)})"
        )
    if not scores.non_inferior:
        failures.append(
            f"its mean score may be more than {policy.margin * 100:.1f} points below "
            f"serving v{baseline.number} "
            f"(difference {_points(scores.difference)}, lower bound {_points(scores.lower)})"
        )
    return {
        "baseline_version": baseline.number,
        "baseline_run": baseline_run.pk,
        "pairs": len(pairs),
        "candidate_only": candidate_only,
        "baseline_only": baseline_only,
        "mcnemar_exact_p": stats.mcnemar_exact_p(candidate_only=candidate_only, baseline_only=baseline_only),
        "pass_rate": {
            "difference": proportions.difference,
            "lower": proportions.lower,
            "upper": proportions.upper,
            "p_value": proportions.p_value,
            "method": "Tango score test, H0: difference <= -margin",
            "ok": proportions.non_inferior,
        },
        "mean_score": {
            "difference": scores.difference,
            "lower": scores.lower,
            "upper": scores.upper,
            "method": "paired BCa bootstrap",
            "ok": scores.non_inferior,
        },
        "margin": policy.margin,
        "ok": proportions.non_inferior and scores.non_inferior,
    }


def _ceiling(
    name: str, values: list[int | None], limit: int | None, measure: Any, unit: str, failures: list[str]
) -> dict[str, Any]:
    known = [value for value in values if value is not None]
    value = measure(known) if known else None
    unknown = len(values) - len(known)
    if limit is None:
        return {"value": value, "max": None, "unknown": unknown, "ok": True}
    ok = value is not None and unknown == 0 and value <= limit
    if not ok:
        if value is None or unknown:
            failures.append(
                f"its {name} is unknown for {unknown} cases, so the ceiling cannot be shown to hold"
            )
        else:
            failures.append(f"its {name} {math.ceil(value)} {unit} is over the ceiling {limit} {unit}")
    return {"value": value, "max": limit, "unknown": unknown, "ok": ok}


def _explain(
    version: ConfigVersion,
    baseline: ConfigVersion | None,
    pass_rate: dict[str, Any],
    policy: GatePolicy,
    failures: list[str],
) -> str:
    if failures:
        return f"v{version.number} fails the gate: " + "; ".join(failures) + "."
    against = (
        f", and is not worse than serving v{baseline.number} by more than {policy.margin * 100:.1f} points"
        if baseline
        else ""
    )
    return (
        f"v{version.number} passes the gate: {pass_rate['passed']} of {pass_rate['n']} cases passed "
        f"(95 % lower bound {_pct(pass_rate['lower'])} clears {_pct(policy.required_pass_rate)}){against}."
    )


# --- the check publishing asks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateStatus:
    """Where a version stands with the gate, as pages and the publishing check show it."""

    required: bool
    verdict: GateVerdict | None
    eval_set_version: EvalSetVersion | None
    detail: str
    missing: list[str]

    @property
    def admits(self) -> bool:
        return not self.missing

    @property
    def summary(self) -> str:
        if not self.required:
            return "no gate"
        if self.verdict is None:
            return "no verdict"
        if self.verdict.is_overridden:
            return "overridden"
        return "passed" if self.admits else ("stale" if self.verdict.passed else "failed")


def gate_status(*, flag: Flag, version: ConfigVersion, environment: Environment | None = None) -> GateStatus:
    """Whether `version` may reach traffic (in `environment`, whose serving version it must beat)."""
    policy = GatePolicy.objects.select_related("eval_set", "pinned_version").filter(flag=flag).first()
    if policy is None:
        return GateStatus(
            False, None, None, f"Flag '{flag.key}' has no gate policy: no verdict is required.", []
        )
    eval_set_version = gate_eval_set_version(policy)
    if eval_set_version is None:
        return GateStatus(
            True,
            None,
            None,
            f"Eval set '{policy.eval_set.key}' has no version to judge on.",
            [f"a version of eval set '{policy.eval_set.key}'"],
        )
    verdict = GateVerdict.objects.filter(
        config_version=version, eval_set_version=eval_set_version, policy_hash=policy_hash(policy)
    ).first()
    on = _describe(eval_set_version)
    if verdict is None:
        return GateStatus(
            True,
            None,
            eval_set_version,
            f"v{version.number} has no gate verdict on {on} under the current policy.",
            [f"a passing gate verdict for v{version.number} on {on}"],
        )
    if verdict.is_overridden:
        return GateStatus(
            True,
            verdict,
            eval_set_version,
            f"v{version.number} failed the gate on {on}; "
            f"{verdict.override_by} overrode it: {verdict.override_reason}",
            [],
        )
    if not verdict.passed:
        return GateStatus(
            True,
            verdict,
            eval_set_version,
            verdict.evidence.get("explanation", ""),
            [f"a passing gate verdict for v{version.number} on {on} (or an Approver's override)"],
        )
    serving = _serving(flag, environment)
    judged_against = verdict.evidence.get("non_inferiority", {}).get("baseline_version")
    if (
        environment is not None
        and serving is not None
        and serving.pk != version.pk
        and judged_against != serving.number
    ):
        return GateStatus(
            True,
            verdict,
            eval_set_version,
            f"v{version.number} was judged against {_against(judged_against)}, "
            f"but '{environment.key}' serves "
            f"v{serving.number}; judge it again.",
            [f"a passing gate verdict for v{version.number} against v{serving.number} on {on}"],
        )
    return GateStatus(True, verdict, eval_set_version, verdict.evidence.get("explanation", ""), [])


def _against(baseline_version: int | None) -> str:
    return f"v{baseline_version}" if baseline_version is not None else "no serving version"


def served_before(*, flag: Flag, version: ConfigVersion, environment: Environment) -> bool:
    """Whether `environment` has served `version` of `flag` before (a known-good version).

    The audit log is the one record of every publish (flags keeps only the current serving
    version); publishing is the only way a version becomes the serving one, and its entry
    targets the (flag, environment) state row, which is never deleted.
    """
    state = FlagState.objects.filter(flag=flag, environment=environment).only("pk").first()
    if state is None:
        return False
    return AuditEntry.objects.filter(
        action="version.published",
        target_type=FlagState._meta.label_lower,
        target_id=str(state.pk),
        changes__serving_version__after=version.number,
    ).exists()


def check_serving(change: preconditions.ServingChange) -> preconditions.Outcome:
    environment = change.environment
    # Rollback never waits on a gate: a return to a version this environment has served
    # before is a return to known-good, and a stale or missing verdict must not block it.
    if environment is not None and served_before(
        flag=change.flag, version=change.version, environment=environment
    ):
        return preconditions.Outcome(
            name=CHECK_NAME,
            met=True,
            detail=(
                f"'{environment.key}' has served v{change.version.number} before: "
                "returning to a known-good version needs no gate verdict."
            ),
            code="gate_required",
            summary="gate: served before",
        )
    # A canary of the content the environment serves now changes nothing a gate could judge
    # (a rollback rehearsal's no-op candidate: the serving content as a new version). Only a
    # split: publishing such a version is asked as any other.
    serving = _serving(change.flag, environment)
    if (
        change.action == "split"
        and environment is not None
        and serving is not None
        and serving.pk != change.version.pk
        and serving.content_hash == change.version.content_hash
    ):
        return preconditions.Outcome(
            name=CHECK_NAME,
            met=True,
            detail=(
                f"v{change.version.number} has the content of v{serving.number}, which "
                f"'{environment.key}' serves: there is no change for the gate to judge."
            ),
            code="gate_required",
            summary="gate: same content as serving",
        )
    status = gate_status(flag=change.flag, version=change.version, environment=environment)
    return preconditions.Outcome(
        name=CHECK_NAME,
        met=status.admits,
        detail=status.detail,
        code="gate_required",
        missing=status.missing,
        summary=f"gate: {status.summary}",
    )
