"""Read model of a flag's live scores: totals per (version, arm, scorer), a chart, the judge budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from evals.models import GatePolicy, LiveScoreRollup, LiveScoringPolicy
from evals.services.gate import gate_eval_set_version
from evals.services.live_scoring import JUDGE_SCORERS, judge_spend_today, judge_version, policy_specs
from flags.models import Environment, Flag


@dataclass(frozen=True)
class LiveScores:
    policy: LiveScoringPolicy | None
    rows: list[dict[str, Any]]
    chart: dict[str, Any]
    spent_micro_usd: int
    budget_stopped: bool
    uses_judge: bool


def _pass_pct(row: dict[str, Any]) -> float | None:
    """Passed among the scored samples that did not error (an error is not a failure)."""
    judged = row["n"] - row["errors"]
    return round(100 * row["passed"] / judged, 1) if judged else None


def live_scores(flag: Flag, *, since: datetime) -> LiveScores:
    policy = LiveScoringPolicy.objects.filter(flag=flag).first()
    rows = [
        {**row, "label": f"v{row['version']} · {row['arm'] or 'all'}", "pass_pct": _pass_pct(row)}
        for row in LiveScoreRollup.objects.filter(flag=flag, bucket__gte=since)
        .values("version", "arm", "scorer")
        .annotate(n=Sum("n"), passed=Sum("passed"), score_sum=Sum("score_sum"), errors=Sum("errors"))
        .order_by("version", "arm", "scorer")
    ]
    labels = list(dict.fromkeys(row["label"] for row in rows))
    scorer_keys = list(dict.fromkeys(row["scorer"] for row in rows))
    by_key = {(row["label"], row["scorer"]): row["pass_pct"] for row in rows}
    chart = {
        "labels": labels,
        "datasets": [
            {
                "label": scorer,
                "data": [by_key.get((label, scorer)) for label in labels],
            }
            for scorer in scorer_keys
        ],
    }
    spent = judge_spend_today(flag.pk, today=timezone.now().date())
    uses_judge = policy is not None and any(
        spec.get("name") in JUDGE_SCORERS for spec in policy.scorers or []
    )
    return LiveScores(
        policy=policy,
        rows=rows,
        chart=chart,
        spent_micro_usd=spent,
        budget_stopped=policy is not None and uses_judge and spent >= policy.daily_judge_budget_micro_usd,
        uses_judge=uses_judge,
    )


def scoring_versions(flag: Flag, environment: Environment) -> dict[str, Any]:
    """What live scoring of `flag` in `environment` judges with now: each scorer's version, the
    judge config version behind an LLM judge, and the gate's eval set version (whose scorers
    live scoring uses when its policy names none). A rollout keeps it with each decision."""
    return scoring_versions_of([(flag, environment)])[(flag.pk, environment.pk)]


def scoring_versions_of(pairs: Sequence[tuple[Flag, Environment]]) -> dict[tuple[int, int], dict[str, Any]]:
    """`scoring_versions` of many flags × environments, by (flag id, environment id): one query
    for the live scoring policies and one for the gates of them all (an analysis tick's sweep)."""
    flag_ids = {flag.pk for flag, _ in pairs}
    policies = {policy.flag_id: policy for policy in LiveScoringPolicy.objects.filter(flag_id__in=flag_ids)}
    gates = {
        gate.flag_id: gate
        for gate in GatePolicy.objects.select_related("eval_set", "pinned_version").filter(
            flag_id__in=flag_ids
        )
    }
    return {
        (flag.pk, environment.pk): _scoring_versions(policies.get(flag.pk), gates.get(flag.pk), environment)
        for flag, environment in pairs
    }


def _scoring_versions(
    policy: LiveScoringPolicy | None, gate: GatePolicy | None, environment: Environment
) -> dict[str, Any]:
    eval_set_version = gate_eval_set_version(gate) if gate else None
    scorers: dict[str, dict[str, Any]] = {}
    for spec in policy_specs(policy) if policy is not None else []:
        entry: dict[str, Any] = {"scorer": spec.name, "scorer_version": spec.definition.version}
        if spec.name in JUDGE_SCORERS:
            key = str(spec.params["judge"])
            judge = judge_version(key, environment.pk)
            entry["judge"] = {
                "flag": key,
                "version": judge.number if judge else None,
                "content_hash": judge.content_hash if judge else None,
            }
        scorers[spec.key] = entry
    return {
        "enabled": policy is not None and policy.enabled,
        "scorers_from": "policy" if policy is not None and policy.scorers else "gate eval set",
        "scorers": scorers,
        "eval_set": {
            "key": eval_set_version.eval_set.key,
            "version": eval_set_version.number,
            "content_hash": eval_set_version.content_hash,
        }
        if eval_set_version is not None
        else None,
    }
