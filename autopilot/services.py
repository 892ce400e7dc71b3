"""Every write of the autopilot: draft a migration, run its gate, propose its rollout.

    create_migration -> gate_running -> (runs finish) advance_migration
        -> gate passed: a rollout via the rollouts lifecycle -> rollout_drafted (or started,
           when the environment's setting allows auto-start)
        -> gate failed: gate_failed, with the failed cases and scorers; the draft stays
        -> a run failed or was cancelled: gate_error; `rerun_gate` starts again

Everything a creation does (the version, the runs, the row) happens in one transaction: a
refusal at any step (no replacement, a rollout already active, a draft that does not validate
or render) leaves nothing behind. The eval runs' workers answer after commit; the periodic
`advance_open_migrations` (and the run's own finish) moves the migration on, claimed by a row
lock and a state guard so two workers never judge it twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from django.db import transaction
from django.utils import timezone

from autopilot import drafting
from autopilot.models import OPEN_STATES, AutopilotSetting, Migration, MigrationState
from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, DomainError, InvalidInput
from evals.models import CaseScore, EvalRun, GatePolicy, GateVerdict, RunCase, RunMode, RunState
from evals.models.runs import FINISHED_RUN_STATES
from evals.services import gate, runs
from flags.catalog import current_catalog
from flags.diff import diff_configs
from flags.models import Environment, Flag
from flags.services.guards import require_reason, writable_state
from flags.services.versions import create_version
from rollouts.services import lifecycle
from rollouts.services.experiments import ensure_no_active_change

logger = logging.getLogger(__name__)
AUTOPILOT = Actor.system("autopilot")
FAILED_CASES_SHOWN = 20


def setting_for(environment: Environment) -> AutopilotSetting:
    """The environment's autopilot setting (both off until someone turns them on)."""
    return AutopilotSetting.objects.filter(environment=environment).first() or AutopilotSetting(
        environment=environment
    )


@transaction.atomic
def set_autopilot_setting(
    *, environment: Environment, auto_start: bool, use_batches: bool, actor: Actor, reason: str = ""
) -> AutopilotSetting:
    if environment.protected and auto_start and not reason.strip():
        raise InvalidInput(
            f"'{environment.key}' is protected: letting the autopilot start rollouts there needs a reason.",
            code="reason_required",
            errors=[{"path": "reason", "message": "must not be blank"}],
        )
    setting = AutopilotSetting.objects.select_for_update().filter(
        environment=environment
    ).first() or AutopilotSetting(environment=environment)
    before = {"auto_start": setting.auto_start, "use_batches": setting.use_batches}
    setting.auto_start, setting.use_batches = auto_start, use_batches
    setting.save()
    audit.record(
        actor=actor,
        action="autopilot.setting_changed",
        target=setting,
        changes={"before": before, "after": {"auto_start": auto_start, "use_batches": use_batches}},
        reason=reason,
        environment_key=environment.key,
    )
    return setting


def _refuse_busy(flag: Flag, environment: Environment) -> None:
    """Refuse while the flag has an active rollout or experiment, or an open migration, there."""
    ensure_no_active_change(flag, environment)
    open_migration = Migration.objects.open().filter(flag=flag, environment=environment).first()
    if open_migration is not None:
        raise Conflict(
            f"Flag '{flag.key}' already has a migration in '{environment.key}' "
            f"(migration {open_migration.pk}, {open_migration.get_state_display().lower()}).",
            code="migration_open",
            extra={"migration": open_migration.pk},
        )


def _gate_policy(flag: Flag) -> GatePolicy:
    policy = GatePolicy.objects.select_related("eval_set", "pinned_version").filter(flag=flag).first()
    if policy is None:
        raise Conflict(
            f"Flag '{flag.key}' has no eval gate policy; the autopilot evaluates every draft before it "
            "proposes a rollout. Set a gate policy first.",
            code="no_gate_policy",
        )
    return policy


def _start_runs(*, migration: Migration, policy: GatePolicy, actor: Actor) -> tuple[EvalRun, EvalRun | None]:
    """Run the draft on the gate's eval set, and the base version when it has no run there yet.

    Answers are stored by (content hash, case hash): a re-run of an unchanged draft pays nothing.
    """
    eval_set_version = gate.gate_eval_set_version(policy)
    if eval_set_version is None:
        raise Conflict(f"Eval set '{policy.eval_set.key}' has no version yet.", code="eval_set_empty")
    run = runs.start_run(
        flag=migration.flag,
        eval_set_version=eval_set_version,
        config_version=migration.draft_version,
        actor=actor,
        mode=migration.mode,
    )
    base_runs = EvalRun.objects.filter(
        config_version=migration.base_version,
        eval_set_version=eval_set_version,
        state__in=(RunState.SUCCEEDED, RunState.QUEUED, RunState.RUNNING),
    )
    baseline_run = base_runs.order_by("-created_at", "-id").first()
    if baseline_run is None:
        baseline_run = runs.start_run(
            flag=migration.flag,
            eval_set_version=eval_set_version,
            config_version=migration.base_version,
            actor=actor,
            mode=migration.mode,
        )
    return run, baseline_run


@transaction.atomic
def create_migration(*, flag: Flag, environment: Environment, actor: Actor, reason: str = "") -> Migration:
    """Draft the version that moves what `environment` serves off its deprecated or retiring
    model, save it as the flag's next version and start its eval gate."""
    require_reason(environment, reason)
    state = writable_state(flag, environment)
    base = state.serving_version
    if base is None:
        raise Conflict(
            f"Flag '{flag.key}' serves nothing in '{environment.key}'; there is nothing to migrate.",
            code="nothing_published",
        )
    _refuse_busy(flag, environment)
    catalog = current_catalog()
    model = drafting.exposed_model(base.content, catalog)
    if model is None:
        raise Conflict(
            f"v{base.number}, served in '{environment.key}', uses no deprecated or retiring model; "
            "there is nothing to migrate.",
            code="not_exposed",
        )
    policy = _gate_policy(flag)
    try:
        draft = drafting.draft_migration(base.content, model=model, catalog=catalog)
    except drafting.NoReplacement as error:
        raise Conflict(str(error), code="no_replacement", extra={"model": model.id}) from None
    message = draft.message(today=timezone.now().date())
    new = create_version(
        flag=flag, content=draft.content, actor=actor, message=message, parent_number=base.number
    )
    diff = diff_configs(base.content, new.version.content)
    migration = Migration.objects.create(
        flag=flag,
        environment=environment,
        from_model=model.id,
        to_model=draft.to_model.id,
        retires_at=model.retires_at,
        base_version=base,
        draft_version=new.version,
        changes=[change.as_dict() for change in draft.changes],
        diff=diff.as_dict(),
        state=MigrationState.GATE_RUNNING,
        mode=RunMode.BATCH if setting_for(environment).use_batches else RunMode.MESSAGES,
        created_by=actor.name,
    )
    migration.run, migration.baseline_run = _start_runs(migration=migration, policy=policy, actor=actor)
    migration.detail = _running_detail(migration)
    migration.save(update_fields=["run", "baseline_run", "detail"])
    audit.record(
        actor=actor,
        action="migration.created",
        target=migration,
        changes={
            "from_model": model.id,
            "to_model": draft.to_model.id,
            "base_version": base.number,
            "draft_version": new.version.number,
            "changes": migration.changes,
            "mode": migration.mode,
        },
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return migration


def _running_detail(migration: Migration) -> str:
    how = "the Message Batches API" if migration.mode == RunMode.BATCH else "the Messages API"
    return (
        f"The eval gate runs v{migration.draft_version.number} on its eval set through {how}; "
        "the rollout is proposed once it passes."
    )


@transaction.atomic
def rerun_gate(*, migration: Migration, actor: Actor, reason: str = "") -> Migration:
    """Run the gate of a failed or errored migration's draft again (after an eval set change,
    a fixed scorer, or a run that died)."""
    migration = _locked(migration)
    if migration.state == MigrationState.GATE_RUNNING:
        raise Conflict(f"Migration {migration.pk}'s gate is running already.", code="gate_running")
    if migration.state not in OPEN_STATES:
        raise Conflict(
            f"Migration {migration.pk} has proposed rollout {migration.rollout_id}; its gate is settled.",
            code="migration_proposed",
        )
    writable_state(migration.flag, migration.environment)
    ensure_no_active_change(migration.flag, migration.environment)
    policy = _gate_policy(migration.flag)
    migration.run, migration.baseline_run = _start_runs(migration=migration, policy=policy, actor=actor)
    before = migration.state
    migration.state, migration.verdict, migration.failures = MigrationState.GATE_RUNNING, None, {}
    migration.detail = _running_detail(migration)
    migration.save()
    audit.record(
        actor=actor,
        action="migration.gate_rerun",
        target=migration,
        changes={"state": {"before": before, "after": migration.state}, "run": migration.run_id},
        reason=reason,
        flag_key=migration.flag.key,
        environment_key=migration.environment.key,
    )
    return migration


def _locked(migration: Migration) -> Migration:
    return (
        Migration.objects.select_related("flag", "environment", "draft_version", "base_version", "run")
        .select_for_update(of=("self",))
        .get(pk=migration.pk)
    )


def _move(migration: Migration, state: str, detail: str, **changes: Any) -> Migration:
    before = migration.state
    migration.state, migration.detail = state, detail
    migration.save()
    audit.record(
        actor=AUTOPILOT,
        action=f"migration.{state}",
        target=migration,
        changes={"state": {"before": before, "after": state}, **changes},
        reason=detail,
        flag_key=migration.flag.key,
        environment_key=migration.environment.key,
    )
    return migration


def failed_cases(run: EvalRun) -> dict[str, Any]:
    """Which cases of a run did not pass, and which scorers failed them (counts per scorer)."""
    rows = list(
        RunCase.objects.filter(run=run).exclude(passed=True).select_related("case").order_by("case__position")
    )
    failing_scores = CaseScore.objects.filter(output_id__in=[row.output_id for row in rows]).exclude(
        passed=True
    )
    if run.scorer_versions:
        failing_scores = failing_scores.filter(scorer__in=list(run.scorer_versions))
    by_output: dict[int, set[str]] = {}
    for output_id, scorer in failing_scores.values_list("output_id", "scorer"):
        by_output.setdefault(output_id, set()).add(scorer)
    failing: Counter[str] = Counter()
    cases: list[dict[str, Any]] = []
    for row in rows:
        names = sorted(by_output.get(row.output_id, set()) if row.output_id else set())
        failing.update(names)
        if len(cases) < FAILED_CASES_SHOWN:
            cases.append({"case": row.case.position, "scorers": names, "error": row.error})
    return {
        "count": len(rows),
        "cases": cases,
        "scorers": [{"scorer": name, "cases": count} for name, count in sorted(failing.items())],
    }


def _runs_finished(migration: Migration) -> str | None:
    """None when every run succeeded; else why the migration waits or stops ("" to wait)."""
    for run in (migration.run, migration.baseline_run):
        if run is None:
            continue
        run.refresh_from_db(fields=["state", "reason"])
        if run.state in (RunState.FAILED, RunState.CANCELLED):
            return f"Eval run {run.pk} {run.state}: {run.reason or 'no reason given'}"
        if run.state not in FINISHED_RUN_STATES:
            return ""
    return None


def advance_migration(*, migration_id: int) -> str:
    """Judge the gate of a migration whose runs finished, and propose (or start) its rollout.

    Idempotency key: the migration's state. The row is locked and only a migration still
    `gate_running` is judged, so concurrent sweeps judge it once.
    """
    with transaction.atomic():
        migration = Migration.objects.filter(pk=migration_id, state=MigrationState.GATE_RUNNING).first()
        if migration is None:
            return "settled"
        migration = _locked(migration)
        if migration.state != MigrationState.GATE_RUNNING:
            return "settled"
        stopped = _runs_finished(migration)
        if stopped == "":
            return "waiting"
        if stopped is not None:
            _move(migration, MigrationState.GATE_ERROR, stopped + " Re-run the gate when it is fixed.")
            return MigrationState.GATE_ERROR
        try:
            with transaction.atomic():
                verdict = gate.evaluate_gate(
                    flag=migration.flag,
                    version=migration.draft_version,
                    environment=migration.environment,
                    actor=AUTOPILOT,
                )
        except DomainError as error:
            _move(migration, MigrationState.GATE_ERROR, f"The gate could not judge the draft: {error.detail}")
            return MigrationState.GATE_ERROR
        migration.verdict = verdict
        if not verdict.passed:
            return _gate_failed(migration, verdict)
        return _propose(migration, verdict)


def _gate_failed(migration: Migration, verdict: GateVerdict) -> str:
    assert migration.run is not None
    migration.failures = failed_cases(migration.run)
    scorers = ", ".join(f"{s['scorer']} ({s['cases']} cases)" for s in migration.failures["scorers"])
    shown = ", ".join(f"#{case['case']}" for case in migration.failures["cases"])
    detail = verdict.evidence.get("explanation", "The gate failed.")
    if migration.failures["count"]:
        detail += f" Failed cases: {shown}" + (
            " …" if migration.failures["count"] > FAILED_CASES_SHOWN else ""
        )
        detail += f"; failing scorers: {scorers or 'none (the answers errored)'}."
    detail += " The draft stays for a person to edit or override."
    _move(migration, MigrationState.GATE_FAILED, detail, verdict=verdict.pk, failures=migration.failures)
    return MigrationState.GATE_FAILED


def _propose(migration: Migration, verdict: GateVerdict) -> str:
    try:
        with transaction.atomic():
            rollout = lifecycle.create_rollout(
                flag=migration.flag,
                environment=migration.environment,
                candidate=migration.draft_version.number,
                actor=AUTOPILOT,
                reason=f"migration {migration.pk}: {migration.from_model} → {migration.to_model}",
            )
    except DomainError as error:
        _move(
            migration,
            MigrationState.GATE_ERROR,
            f"The gate passed, but no rollout could be proposed: {error.detail}",
        )
        return MigrationState.GATE_ERROR
    migration.rollout = rollout
    detail = (
        f"{verdict.evidence.get('explanation', 'The gate passed.')} Rollout {rollout.pk} is proposed; "
        "a person starts it."
    )
    if setting_for(migration.environment).auto_start:
        try:
            with transaction.atomic():
                lifecycle.start_rollout(
                    rollout=rollout, actor=AUTOPILOT, reason=f"auto-start of migration {migration.pk}"
                )
        except DomainError as error:
            detail += f" Auto-start was refused: {error.detail}"
        else:
            _move(
                migration,
                MigrationState.ROLLOUT_STARTED,
                f"Rollout {rollout.pk} started: '{migration.environment.key}' lets the autopilot start it.",
                verdict=verdict.pk,
                rollout=rollout.pk,
            )
            return MigrationState.ROLLOUT_STARTED
    _move(migration, MigrationState.ROLLOUT_DRAFTED, detail, verdict=verdict.pk, rollout=rollout.pk)
    return MigrationState.ROLLOUT_DRAFTED


def advance_open_migrations() -> int:
    """Advance every migration whose gate is running; returns how many settled."""
    ids = Migration.objects.filter(state=MigrationState.GATE_RUNNING).values_list("pk", flat=True)
    outcomes = [advance_migration(migration_id=pk) for pk in list(ids)]
    return sum(outcome not in ("waiting", "settled") for outcome in outcomes)
