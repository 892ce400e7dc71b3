"""Rollout ticks on a real Celery worker SIGKILLed mid-tick, again and again.

PostgreSQL + Redis only (the services pass): the kill must land inside a tick's transactions,
which the embedded SQLite run serialises. The test plays beat (a `tick_rollouts` message every
half second, unless one is already waiting) and a person starting one more rollout before each
kill, so that the worker always has ticks in flight; it kills the worker at a random moment
once it has claimed a tick and not yet recorded it, hands the ticks to a new worker, and after
the last kill lets that one finish. The workers are forked from one warm parent that has paid
the imports and Django's set-up (tests/integration/warm_workers.py), and still take a moment to
start, so the next ones start ahead, each on a queue of its own that beat turns to when the one
before is killed: only one worker ticks at a time.

Each rollout's rollups hold the same counts in every minute, and those counts decide clearly,
so every tick decides the same whatever its window: the decisions do not depend on when the
ticks run or how often a worker died. The uninterrupted run is each scenario ticked in-process.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.models import AuditEntry
from evals.models import LiveScoreRollup
from flags.models import FlagState, Split
from rollouts import tasks
from rollouts.models import Decision, Rollout, RolloutState
from rollouts.services import lifecycle, ticks
from telemetry.models.calls import Rollup
from tests.factories import FACTORY_ACTOR
from tests.integration.test_worker import database_url
from tests.integration.warm_workers import WarmWorkers, wait_gone
from tests.rollouts.factories import make_rollout, make_world

KILLS = 20
STANDBY = 2  # workers starting ahead of their turn
INTERVAL_SECONDS = 1
LEASE_SECONDS = 3
WAIT_SECONDS = 300
MINUTES_OF_DATA = 61  # from the minute before setup: the run ends well within the hour
# Three analysed stages of two seconds at least (so a healthy rollout holds a few ticks in each),
# then the promotion to everyone.
STAGES: list[dict[str, Any]] = [
    {
        "weight": weight,
        "min_duration_seconds": 2,
        "max_duration_seconds": 3600,
        "min_units_per_arm": 50,
        "min_judged_per_arm": 30,
    }
    for weight in (100, 1000, 5000)
] + [{"weight": 10_000}]
# The pass rate is not critical: a regression must hold on two consecutive ticks, so the
# count of consecutive ticks handed from tick to tick is under test too.
POLICY: list[dict[str, Any]] = [
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
    {"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.02},
]
TRANSITIONS = {
    "promote": ("rollout.stage_advanced", "rollout.promoted"),
    "rollback": ("rollout.rolled_back",),
    "pause": ("rollout.paused",),
}

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") != "1",
        reason="killing a worker mid-transaction needs PostgreSQL + Redis (the services pass)",
    ),
    pytest.mark.django_db(transaction=True),
]


@dataclass(frozen=True)
class Scenario:
    """Calls and passed live scores per arm in every minute (each call judged once)."""

    candidate_calls: int
    control_calls: int
    candidate_passed: int
    control_passed: int


SCENARIOS = {
    "healthy": Scenario(20_000, 20_000, 17_000, 17_000),  # promoted through every stage
    "regressing": Scenario(2_000, 2_000, 1_200, 1_700),  # held one tick, then rolled back
    "mismatched": Scenario(5_200, 4_800, 4_420, 4_080),  # a 52/48 split: paused
}
# The rollouts, one started before each kill: mostly healthy ones, which tick longest.
PLAN = ["healthy", "healthy", "regressing", "healthy", "healthy", "healthy", "mismatched"] * 3
assert len(PLAN) >= KILLS


def make_scenario_rollout(name: str) -> Rollout:
    """A ready rollout with `name`'s counts in every minute of the next hour (and the last one):
    the rollup rows telemetry ingest and live scoring would have left."""
    scenario = SCENARIOS[name]
    rollout = make_rollout(make_world(), stages=STAGES, policy=POLICY, tick_interval_seconds=INTERVAL_SECONDS)
    first = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    calls, scores = [], []
    for offset in range(MINUTES_OF_DATA):
        bucket = first + timedelta(minutes=offset)
        for arm, version, n, passed in (
            ("candidate", rollout.candidate.number, scenario.candidate_calls, scenario.candidate_passed),
            ("control", rollout.baseline.number, scenario.control_calls, scenario.control_passed),
        ):
            where = {"bucket": bucket, "environment": rollout.environment, "flag": rollout.flag}
            calls.append(
                Rollup(**where, version=version, arm=arm, model="claude-sonnet-5-5", calls=n, stop_end_turn=n)
            )
            scores.append(
                LiveScoreRollup(
                    **where, version=version, arm=arm, scorer="helpful", n=n, passed=passed, score_sum=passed
                )
            )
    Rollup.objects.bulk_create(calls)
    LiveScoreRollup.objects.bulk_create(scores)
    return rollout


def settled(rollout: Rollout) -> bool:
    return rollout.state != RolloutState.RUNNING


@dataclass(frozen=True)
class Run:
    """How a rollout ended, and the state-changing decisions on the way, in tick order."""

    end: tuple[str, int, str]
    changes: list[tuple[int, str, str]]


def run_of(rollout: Rollout) -> Run:
    rollout.refresh_from_db()
    changes = [
        (decision.stage.index, decision.action, decision.reason)
        for decision in Decision.objects.filter(rollout=rollout).select_related("stage").order_by("tick")
        if decision.outcome
    ]
    return Run((rollout.state, rollout.stage_index, rollout.pause_reason), changes)


def run_uninterrupted(rollout: Rollout) -> Run:
    """Tick the rollout in-process, one interval apart, until it settles."""
    lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="reference")
    now = timezone.now()
    for _ in range(100):
        now = max(now + timedelta(seconds=INTERVAL_SECONDS), timezone.now())
        ticks.tick_rollout(rollout_id=rollout.pk, now=now)
        rollout.refresh_from_db()
        if settled(rollout):
            return run_of(rollout)
    raise AssertionError(f"the uninterrupted run of rollout {rollout.pk} did not settle")


class Beat(threading.Thread):
    """Sends `tick_rollouts` to the current worker's queue twice a second, as beat would on a
    compressed schedule; not while a message still waits there, so that a worker starting late
    does not meet a flood."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.queue = ""
        self.stopped = threading.Event()

    def run(self) -> None:
        waiting = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        with celery_app.connection_for_write() as broker, broker.Producer() as producer:
            while not self.stopped.wait(0.5):
                queue = self.queue
                if queue and waiting.llen(queue) == 0:
                    tasks.tick_rollouts.apply_async(queue=queue, producer=producer)


@pytest.fixture
def beat() -> Iterator[Beat]:
    """Beat, started by the test once its rollouts are set up."""
    sender = Beat()
    yield sender
    sender.stopped.set()
    if sender.is_alive():
        sender.join()


@dataclass
class Worker:
    pid: int
    queue: str


class Workers(list[Worker]):
    """The started workers, in order, forked from one warm parent (`WarmWorkers`): a worker then
    costs a fork and Celery's start, not an interpreter and Django's set-up. Each is a solo-pool
    worker on a queue of its own, with a lease of LEASE_SECONDS."""

    def __init__(self, logs: Path) -> None:
        super().__init__()
        self.logs = logs
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "FLAGSTAFF_VAR_DIR": str(logs),
            "FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        self.parent = WarmWorkers(env, cwd=settings.BASE_DIR, log=logs / "parent.log")

    def start(self) -> Worker:
        queue = f"test-kills-{uuid.uuid4().hex[:12]}"
        argv = [
            "--pool", "solo", "--concurrency", "1", "--prefetch-multiplier", "1", "--loglevel", "WARNING",
            "--queues", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        pid = self.parent.start(log=self.logs / f"worker-{len(self)}.log", argv=argv)
        self.append(Worker(pid, queue))
        return self[-1]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Every worker alive at the end is stopped, and their queues deleted."""
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.parent.close()
        if started:
            redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(*(worker.queue for worker in started))


def claimed_unrecorded(ids: list[int], *, claimed_after: datetime, at: datetime) -> bool:
    """Whether a rollout's tick was claimed after `claimed_after` and not recorded by `at`.

    A claim sets next_tick_at a lease ahead of the claiming sweep's clock; recording the tick
    sets it one interval ahead (a promotion: to now). So a next_tick_at beyond both the lease
    from `claimed_after` and an interval (plus slack) from `at` is a tick in flight.
    """
    return Rollout.objects.filter(
        pk__in=ids,
        state=RolloutState.RUNNING,
        next_tick_at__gte=claimed_after + timedelta(seconds=LEASE_SECONDS),
        next_tick_at__gt=at + timedelta(seconds=INTERVAL_SECONDS + 0.25),
    ).exists()


def wait_for(condition: Any, logs: Path, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    worker_logs = "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("worker-*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{worker_logs}")


def test_tick__worker_sigkilled_mid_tick_20_times__no_double_promotion_no_lost_decision_same_end(
    beat: Beat, workers: Workers, tmp_path: Path
) -> None:
    assert connection.vendor == "postgresql"
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    expected = {name: run_uninterrupted(make_scenario_rollout(name)) for name in SCENARIOS}
    rollouts = [(name, make_scenario_rollout(name)) for name in PLAN]
    ids = [rollout.pk for _, rollout in rollouts]

    beat.start()
    waiting = list(rollouts)
    mid_tick = 0
    for turn in range(KILLS):
        # A person starts a rollout before each kill, so there is always a tick to interrupt.
        lifecycle.start_rollout(rollout=waiting.pop(0)[1], actor=FACTORY_ACTOR, reason="canary")
        while len(workers) <= min(turn + STANDBY, KILLS):
            workers.start()
        worker = workers[turn]
        turned_at = timezone.now()
        beat.queue = worker.queue
        wait_for(
            lambda since=turned_at: claimed_unrecorded(ids, claimed_after=since, at=timezone.now()),
            tmp_path,
            f"a tick in flight (seed {seed})",
        )
        time.sleep(chance.uniform(0.0, 0.05))
        killed_at = timezone.now()
        os.kill(worker.pid, signal.SIGKILL)
        assert wait_gone(worker.pid, time.monotonic() + WAIT_SECONDS), f"worker {worker.pid} outlived SIGKILL"
        mid_tick += claimed_unrecorded(ids, claimed_after=turned_at, at=killed_at)

    for _name, rollout in waiting:
        lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="canary")
    beat.queue = workers[KILLS].queue
    wait_for(
        lambda: not Rollout.objects.filter(pk__in=ids, state=RolloutState.RUNNING).exists(),
        tmp_path,
        f"every rollout to settle (seed {seed})",
    )

    assert mid_tick >= KILLS // 2, f"only {mid_tick} of {KILLS} kills landed mid-tick (seed {seed})"
    for name, rollout in rollouts:
        run = run_of(rollout)
        decisions = list(Decision.objects.filter(rollout=rollout).order_by("tick"))
        transitions = list(
            AuditEntry.objects.filter(target_type="rollouts.rollout", target_id=str(rollout.pk)).order_by(
                "id"
            )
        )
        by_tick = [entry.action for entry in transitions if entry.actor_name == ticks.TICK_ACTOR.name]
        # Same end, and the same state changes in the same order, as the uninterrupted run.
        assert run == expected[name], (name, rollout.pk, seed)
        # No lost decision: one per tick, ticks numbered without a gap, each applied.
        assert [d.tick for d in decisions] == list(range(1, rollout.ticks_done + 1))
        assert all(d.applied for d in decisions)
        # Every state-changing decision has its one transition, and no transition is without one.
        assert len(by_tick) == len(run.changes)
        for (_stage, action, _reason), audited in zip(run.changes, by_tick, strict=True):
            assert audited in TRANSITIONS[action]
        # No double promotion: each transition bumped the version once, each stage left once.
        assert [entry.changes["version"] for entry in transitions if "version" in entry.changes] == list(
            range(1, rollout.version + 1)
        )
        left = [entry.changes["from_stage"] for entry in transitions if "from_stage" in entry.changes]
        assert left == sorted(set(left))
        state = FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)
        serving = rollout.candidate_id if rollout.state == RolloutState.PROMOTED else rollout.baseline_id
        assert state.serving_version_id == serving
        active = Split.objects.active_for(rollout.flag, rollout.environment)
        assert (active is not None) == (rollout.state == RolloutState.PAUSED)
