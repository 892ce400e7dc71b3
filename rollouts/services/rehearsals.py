"""Rollback rehearsals: prove, on a real environment, that the one-motion rollback works and how
fast it reaches services.

A rehearsal is requested (a person, a token, the command, or a schedule's sweep) as a pending
row; a worker claims it (a conditional UPDATE: one run per row) and runs it:

1. a no-op candidate: the serving content as a new version (the gate has nothing to judge);
2. a small canary of it, through the rollout lifecycle (FLAGSTAFF_REHEARSAL_CANARY_WEIGHT);
3. a probe (a real `flagstaff` client with a rehearsal-only token, following the change stream)
   sees the canary for units in it;
4. the canary rolled back through rollouts.services.rollback.roll_back, the one motion every
   Roll back button uses (as a rehearsal: no incident of its own);
5. three times measured from the rollback's commit (rollouts.propagation): the API's snapshot
   serving the new revision, every connected change stream having it, the probe resolving the
   baseline for the canary units.

Failed, or any time over FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS: an incident. Production (a
protected environment, or one keyed `production`) only with FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, DomainError, InvalidInput
from controlplane.models import Scope
from controlplane.services import create_api_token, revoke_api_token
from flags.models import Environment, Flag, FlagState
from flags.services.guards import lock_writable_flag
from flags.services.versions import create_version
from flagstaff import Flagstaff
from rollouts import propagation
from rollouts.models import (
    Experiment,
    RehearsalSchedule,
    RehearsalState,
    RehearsalTrigger,
    RollbackRehearsal,
    Rollout,
)
from rollouts.services import lifecycle
from rollouts.services.rollback import roll_back
from telemetry.models.incidents import IncidentKind
from telemetry.services.incidents import open_incident

logger = logging.getLogger(__name__)

# A pending rehearsal not started within this long lost its message: the sweep sends it again.
REQUEUE_AFTER = timedelta(seconds=60)
SCHEDULE_ACTOR = "schedule"


def is_production(environment: Environment) -> bool:
    return environment.protected or environment.key == "production"


def _refuse_production(environment: Environment) -> InvalidInput:
    return InvalidInput(
        f"'{environment.key}' is a production environment: rollback rehearsals run there only when "
        "FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION is set. Rehearse in a staging environment instead.",
        code="rehearsal_production_refused",
        errors=[{"path": "environment", "message": "production needs FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION"}],
    )


def _check_target(flag: Flag, environment: Environment) -> FlagState:
    """What a rehearsal needs of its flag × environment; the refusal says what is missing."""
    if is_production(environment) and not settings.FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION:
        raise _refuse_production(environment)
    lock_writable_flag(flag, consequence="it cannot be rehearsed")
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    if state is None or state.serving_version is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}': nothing to rehearse a "
            "rollback of. Publish one first.",
            code="nothing_published",
        )
    busy = Rollout.objects.active().filter(flag=flag, environment=environment).first()
    if busy is not None:
        raise Conflict(
            f"Flag '{flag.key}' has an active rollout in '{environment.key}' (rollout {busy.pk}); a "
            "rehearsal would need its own canary. Rehearse when it has ended.",
            code="rollout_active",
        )
    if Experiment.objects.active().filter(flag=flag, environment=environment).exists():
        raise Conflict(
            f"Flag '{flag.key}' has an active experiment in '{environment.key}'; rehearse when it has ended.",
            code="experiment_active",
        )
    return state


def default_environment() -> Environment:
    environment = Environment.objects.filter(key=settings.FLAGSTAFF_REHEARSAL_ENVIRONMENT).first()
    if environment is None:
        raise InvalidInput(
            f"Name the environment: the default one, '{settings.FLAGSTAFF_REHEARSAL_ENVIRONMENT}' "
            "(FLAGSTAFF_REHEARSAL_ENVIRONMENT), does not exist.",
            errors=[{"path": "environment", "message": "Required: the default environment does not exist."}],
        )
    return environment


@transaction.atomic
def request_rehearsal(
    *,
    flag: Flag,
    environment: Environment,
    actor: Actor,
    reason: str = "",
    schedule: RehearsalSchedule | None = None,
) -> RollbackRehearsal:
    """A pending rehearsal, run by a worker after commit. 409 when one is already under way."""
    _check_target(flag, environment)
    try:
        with transaction.atomic():
            rehearsal = RollbackRehearsal.objects.create(
                flag=flag,
                environment=environment,
                schedule=schedule,
                trigger=RehearsalTrigger.SCHEDULE if schedule else RehearsalTrigger.MANUAL,
                started_by=actor.name,
                reason=reason,
                threshold_seconds=settings.FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS,
            )
    except IntegrityError:
        raise Conflict(
            f"A rollback rehearsal of '{flag.key}' in '{environment.key}' is already under way.",
            code="rehearsal_active",
        ) from None
    audit.record(
        actor=actor,
        action="rehearsal.requested",
        target=rehearsal,
        changes={"trigger": rehearsal.trigger, "threshold_seconds": rehearsal.threshold_seconds},
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    from rollouts.tasks import run_rehearsal  # the tasks module imports this one

    transaction.on_commit(lambda: run_rehearsal.delay(rehearsal.pk), robust=True)
    return rehearsal


# Schedules


@transaction.atomic
def set_rehearsal_schedule(
    *,
    flag: Flag,
    environment: Environment,
    interval_seconds: int,
    actor: Actor,
    reason: str = "",
    enabled: bool = True,
) -> RehearsalSchedule:
    """Rehearse `flag` in `environment` every `interval_seconds`, the first one interval from now."""
    if isinstance(interval_seconds, bool) or not isinstance(interval_seconds, int) or interval_seconds < 60:
        raise InvalidInput(
            "The interval is a whole number of seconds, at least 60 (604800 is weekly).",
            errors=[{"path": "interval_seconds", "message": "must be a whole number of at least 60"}],
        )
    if is_production(environment) and not settings.FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION:
        raise _refuse_production(environment)
    lock_writable_flag(flag, consequence="it cannot be rehearsed")
    now = timezone.now()
    schedule, created = RehearsalSchedule.objects.select_for_update().get_or_create(
        flag=flag,
        environment=environment,
        defaults={
            "interval_seconds": interval_seconds,
            "next_run_at": now + timedelta(seconds=interval_seconds),
            "enabled": enabled,
            "created_by_name": actor.name,
        },
    )
    before = {"interval_seconds": schedule.interval_seconds, "enabled": schedule.enabled}
    if not created:
        schedule.interval_seconds, schedule.enabled = interval_seconds, enabled
        schedule.next_run_at = now + timedelta(seconds=interval_seconds)
        schedule.save(update_fields=["interval_seconds", "enabled", "next_run_at", "updated_at"])
    audit.record(
        actor=actor,
        action="rehearsal_schedule.created" if created else "rehearsal_schedule.changed",
        target=schedule,
        changes=(
            {"interval_seconds": interval_seconds, "enabled": enabled}
            if created
            else audit.changed_fields(before, {"interval_seconds": interval_seconds, "enabled": enabled})
        ),
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return schedule


@transaction.atomic
def delete_rehearsal_schedule(*, schedule: RehearsalSchedule, actor: Actor, reason: str = "") -> None:
    audit.record(
        actor=actor,
        action="rehearsal_schedule.deleted",
        target=schedule,
        changes={"interval_seconds": schedule.interval_seconds},
        reason=reason,
        flag_key=schedule.flag.key,
        environment_key=schedule.environment.key,
    )
    schedule.delete()


def _claim_schedule(schedule: RehearsalSchedule, now: datetime) -> bool:
    """Move the schedule one interval on, if no other sweep did since it was read."""
    return (
        RehearsalSchedule.objects.filter(
            pk=schedule.pk, enabled=True, next_run_at=schedule.next_run_at
        ).update(next_run_at=now + timedelta(seconds=schedule.interval_seconds), updated_at=now)
        == 1
    )


def sweep_rehearsals(*, now: datetime | None = None) -> int:
    """Request the rehearsal of every due schedule, once per due time however many sweeps run;
    send again the pending rehearsals whose message was lost. Returns the rehearsals requested."""
    now = now or timezone.now()
    requested = 0
    for schedule in RehearsalSchedule.objects.due(now).select_related("flag", "environment"):
        if not _claim_schedule(schedule, now):
            continue
        actor = Actor.system(f"{SCHEDULE_ACTOR}:{schedule.flag.key}/{schedule.environment.key}")
        try:
            request_rehearsal(
                flag=schedule.flag,
                environment=schedule.environment,
                actor=actor,
                reason=f"scheduled every {schedule.interval_seconds} s",
                schedule=schedule,
            )
        except DomainError as refusal:
            _record_skipped(schedule, actor, refusal.detail)
        else:
            requested += 1
    from rollouts.tasks import run_rehearsal

    for lost in RollbackRehearsal.objects.filter(
        state=RehearsalState.PENDING, requested_at__lt=now - REQUEUE_AFTER
    ):
        run_rehearsal.delay(lost.pk)
    return requested


@transaction.atomic
def _record_skipped(schedule: RehearsalSchedule, actor: Actor, why: str) -> RollbackRehearsal:
    """A scheduled rehearsal that could not start (a rollout running, nothing published): kept,
    with the reason, so that the record shows the gap."""
    now = timezone.now()
    rehearsal = RollbackRehearsal.objects.create(
        flag=schedule.flag,
        environment=schedule.environment,
        schedule=schedule,
        trigger=RehearsalTrigger.SCHEDULE,
        state=RehearsalState.SKIPPED,
        started_by=actor.name,
        threshold_seconds=settings.FLAGSTAFF_REHEARSAL_THRESHOLD_SECONDS,
        outcome=f"Not run: {why}",
        failures=[why],
        finished_at=now,
    )
    audit.record(
        actor=actor,
        action="rehearsal.skipped",
        target=rehearsal,
        changes={"why": why},
        flag_key=schedule.flag.key,
        environment_key=schedule.environment.key,
    )
    return rehearsal


# Running


class _Log:
    """The rehearsal's steps with timestamps, and what failed."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def step(self, name: str, detail: str) -> None:
        self.steps.append({"step": name, "at": timezone.now().isoformat(), "detail": detail})

    def fail(self, why: str) -> None:
        self.failures.append(why)
        self.step("failed", why)


class _Abandon(Exception):
    """A step failed; what it said is in the log."""


@contextmanager
def _probe_token(environment: Environment, rehearsal: RollbackRehearsal, actor: Actor) -> Iterator[str]:
    """A token for the probe and the snapshot checks, bound to the environment, revoked after."""
    issued = create_api_token(
        name=f"rollback rehearsal {rehearsal.pk}",
        scopes=[Scope.RESOLVE, Scope.READ],
        actor=actor,
        environment=environment,
    )
    try:
        yield issued.secret
    finally:
        revoke_api_token(token=issued.token, actor=actor, reason=f"rollback rehearsal {rehearsal.pk} ended")


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(propagation.POLL_SECONDS)
    return True


def run_rehearsal(*, rehearsal_id: int) -> RollbackRehearsal | None:
    """Run a pending rehearsal, once: a worker that finds it claimed (or gone) does nothing."""
    now = timezone.now()
    if not RollbackRehearsal.objects.filter(pk=rehearsal_id, state=RehearsalState.PENDING).update(
        state=RehearsalState.RUNNING, started_at=now
    ):
        return RollbackRehearsal.objects.filter(pk=rehearsal_id).first()
    rehearsal = RollbackRehearsal.objects.select_related("flag", "environment").get(pk=rehearsal_id)
    actor = Actor.system(f"rehearsal:{rehearsal.pk}")
    log = _Log()
    watched: propagation.Watch | None = None
    try:
        watched = _rehearse(rehearsal, actor, log)
    except _Abandon:
        pass
    except DomainError as refusal:
        log.fail(refusal.detail)
    except Exception as exc:  # recorded and announced as a failed rehearsal, never lost
        logger.exception("rollback rehearsal failed", extra={"rehearsal": rehearsal.pk})
        log.fail(f"unexpected error: {exc!r}")
    finally:
        _take_canary_off(rehearsal, actor, log)
    return _finish(rehearsal, actor, log, watched)


def _rehearse(rehearsal: RollbackRehearsal, actor: Actor, log: _Log) -> propagation.Watch:
    flag, environment = rehearsal.flag, rehearsal.environment
    with transaction.atomic():
        state = _check_target(flag, environment)
    baseline = state.serving_version
    assert baseline is not None
    timeout = settings.FLAGSTAFF_REHEARSAL_TIMEOUT_SECONDS
    api_url = settings.FLAGSTAFF_REHEARSAL_API_URL
    with _probe_token(environment, rehearsal, actor) as secret:
        probe = Flagstaff(url=api_url, token=secret, environment=environment.key, timeout=5.0)
        try:
            if probe.revision is None:
                log.fail(
                    f"the probe client could not fetch the snapshot from {api_url} "
                    "(FLAGSTAFF_REHEARSAL_API_URL)"
                )
                raise _Abandon
            log.step("probe_connected", f"the probe serves revision {probe.revision} from {api_url}")
            candidate = create_version(
                flag=flag,
                content=baseline.content,
                actor=actor,
                message=f"rollback rehearsal {rehearsal.pk}: v{baseline.number}'s content as a new version",
                parent_number=baseline.number,
            ).version
            RollbackRehearsal.objects.filter(pk=rehearsal.pk).update(candidate=candidate)
            log.step("candidate_created", f"v{candidate.number}, the content of v{baseline.number}")
            weight = settings.FLAGSTAFF_REHEARSAL_CANARY_WEIGHT
            rollout = lifecycle.create_rollout(
                flag=flag,
                environment=environment,
                candidate=candidate.number,
                actor=actor,
                stages=[
                    {"weight": weight, "min_duration_seconds": 86400, "max_duration_seconds": 86400},
                    {"weight": 10000},
                ],
                reason=f"rollback rehearsal {rehearsal.pk}",
            )
            rollout = lifecycle.start_rollout(
                rollout=rollout, actor=actor, reason=f"rollback rehearsal {rehearsal.pk}"
            )
            RollbackRehearsal.objects.filter(pk=rehearsal.pk).update(rollout=rollout)
            rehearsal.rollout = rollout
            assert rollout.split is not None
            log.step(
                "canary_started", f"rollout {rollout.pk}: v{candidate.number} to {weight / 100:g} % of units"
            )
            units = propagation.canary_units(
                rollout.split.seed, weight, settings.FLAGSTAFF_REHEARSAL_PROBE_UNITS
            )

            def on(version: int) -> bool:
                served = propagation.served_versions(probe, flag.key, flag.stickiness, units)
                return all(number == version for number in served.values())

            if not _wait(lambda: on(candidate.number), timeout):
                log.fail(
                    f"the probe never served the canary v{candidate.number} to its {len(units)} units within "
                    f"{timeout:g} s (a targeting rule may catch them, or the probe does not get changes)"
                )
                raise _Abandon
            log.step("canary_seen", f"the probe serves v{candidate.number} to {len(units)} canary units")
            done = roll_back(
                flag=flag,
                environment=environment,
                actor=actor,
                reason=f"rollback rehearsal {rehearsal.pk}",
                rehearsal=True,
            )
            started = time.monotonic()
            log.step("rolled_back", f"revision {done.revision_after}: {done.summary}")
            watched = propagation.watch(
                started=started,
                revision=done.revision_after,
                environment=environment.key,
                api=propagation.Api(api_url, secret),
                redis_url=settings.REDIS_URL or None,
                probe_on_baseline=lambda: on(baseline.number),
                timeout=timeout,
            )
        finally:
            probe.close()
    _log_watch(watched, log, len(units), timeout)
    return watched


def _log_watch(watched: propagation.Watch, log: _Log, units: int, timeout: float) -> None:
    for note in watched.notes:
        log.step("note", note)
    if watched.snapshot_seconds is None:
        log.fail(f"the API's snapshot did not serve the new revision within {timeout:g} s")
    else:
        log.step("snapshot_served", f"after {watched.snapshot_seconds:.3f} s")
    reach = watched.reach
    if reach is not None and reach.processes == 0:
        log.step(
            "note", "no stream process reported its streams (streams held by web processes are not counted)"
        )
    if reach is not None:
        if watched.stream_seconds is None:
            log.fail(
                f"{reach.reached} of {reach.connected} connected change streams had the revision "
                f"after {timeout:g} s"
            )
        else:
            log.step(
                "streams_reached",
                f"{reach.reached} of {reach.connected} after {watched.stream_seconds:.3f} s",
            )
    if watched.probe_seconds is None:
        log.fail(f"the probe still served the canary to some of its {units} units after {timeout:g} s")
    else:
        log.step("probe_on_baseline", f"{units} units after {watched.probe_seconds:.3f} s")


def _take_canary_off(rehearsal: RollbackRehearsal, actor: Actor, log: _Log) -> None:
    """A rehearsal that failed before its rollback must not leave its canary on traffic."""
    rollout = Rollout.objects.filter(pk=rehearsal.rollout_id).first() if rehearsal.rollout_id else None
    if rollout is None or not rollout.is_active:
        return
    try:
        if rollout.split_id is not None:
            roll_back(
                flag=rehearsal.flag,
                environment=rehearsal.environment,
                actor=actor,
                reason=f"rollback rehearsal {rehearsal.pk} failed: its canary taken off",
                rehearsal=True,
            )
        else:
            lifecycle.abort_rollout(
                rollout=rollout, actor=actor, reason=f"rollback rehearsal {rehearsal.pk} failed"
            )
        log.step("canary_removed", f"rollout {rollout.pk} taken off traffic after the failure")
    except DomainError as refusal:
        log.fail(f"could not take the canary (rollout {rollout.pk}) off traffic: {refusal.detail}")


def _outcome(rehearsal: RollbackRehearsal, watched: propagation.Watch | None, log: _Log) -> tuple[bool, str]:
    threshold = rehearsal.threshold_seconds
    if watched is not None:
        slow = [
            f"{name} took {seconds:.3f} s, over the {threshold:g} s threshold"
            for name, seconds in (
                ("the API's snapshot", watched.snapshot_seconds),
                ("the change streams", watched.stream_seconds),
                ("the probe", watched.probe_seconds),
            )
            if seconds is not None and seconds > threshold
        ]
        for why in slow:
            log.fail(why)
    if log.failures:
        return False, "Failed: " + "; ".join(log.failures) + "."
    assert watched is not None
    streams = (
        f"all {watched.reach.connected} connected change streams had it after {watched.stream_seconds:.3f} s"
        if watched.reach is not None
        else "the change streams were not measured (no Redis)"
    )
    return True, (
        f"Passed: the API served the new revision after {watched.snapshot_seconds:.3f} s, {streams}, and the "
        f"probe resolved the baseline for the canary units after {watched.probe_seconds:.3f} s."
    )


@transaction.atomic
def _finish(
    rehearsal: RollbackRehearsal, actor: Actor, log: _Log, watched: propagation.Watch | None
) -> RollbackRehearsal:
    passed, outcome = _outcome(rehearsal, watched, log)
    reach = watched.reach if watched else None
    fields: dict[str, Any] = {
        "state": RehearsalState.PASSED if passed else RehearsalState.FAILED,
        "snapshot_seconds": watched.snapshot_seconds if watched else None,
        "stream_seconds": watched.stream_seconds if watched else None,
        "probe_seconds": watched.probe_seconds if watched else None,
        "clients_connected": reach.connected if reach else None,
        "clients_reached": reach.reached if reach else None,
        "steps": log.steps,
        "failures": log.failures,
        "outcome": outcome,
        "finished_at": timezone.now(),
    }
    if not passed:
        state = FlagState.objects.select_related("flag", "environment").get(
            flag=rehearsal.flag, environment=rehearsal.environment
        )
        incident = open_incident(
            kind=IncidentKind.ROLLBACK_REHEARSAL_FAILED,
            state=state,
            summary=f"Rollback rehearsal {rehearsal.pk} of '{rehearsal.flag.key}' in "
            f"'{rehearsal.environment.key}' failed: {'; '.join(log.failures)}",
            evidence={"rehearsal": rehearsal.pk, **{k: v for k, v in fields.items() if k != "finished_at"}},
            actor=actor,
        )
        fields["incident"] = incident
    RollbackRehearsal.objects.filter(pk=rehearsal.pk).update(**fields)
    rehearsal.refresh_from_db()
    audit.record(
        actor=actor,
        action="rehearsal.passed" if passed else "rehearsal.failed",
        target=rehearsal,
        changes={
            key: fields[key]
            for key in (
                "snapshot_seconds",
                "stream_seconds",
                "probe_seconds",
                "clients_connected",
                "clients_reached",
            )
        }
        | {"failures": log.failures, "rollout": rehearsal.rollout_id},
        reason=outcome,
        flag_key=rehearsal.flag.key,
        environment_key=rehearsal.environment.key,
    )
    return rehearsal
