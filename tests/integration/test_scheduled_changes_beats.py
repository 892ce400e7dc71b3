"""Scheduled changes applied by two real `celery beat` processes and two real workers: each
change is applied (or skipped) exactly once, in both passes (SQLite and the filesystem broker,
PostgreSQL and Redis).

Both beats send the sweep every half second to the workers' queue, so each due change is swept
by several messages at once; the claim by conditional UPDATE lets one of them apply it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from controlplane.models import AuditEntry
from flags import services as flag_services
from flags.models import Environment, FlagState
from rollouts.models import ScheduledChange, ScheduledChangeState
from rollouts.services import scheduling
from tests.factories import FACTORY_ACTOR, make_flag, make_version
from tests.integration.test_worker import broker_options, database_url
from tests.rollouts.factories import make_world

BEATS = 2
WORKERS = 2
BEAT_SECONDS = 0.5
WAIT_SECONDS = 300  # the processes start in seconds, or minutes on a loaded machine


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two beats and two solo workers on a queue of the test's own; stopped afterwards."""
    queue = f"test-scheduled-{uuid.uuid4().hex[:12]}"
    broker_options(tmp_path)  # the filesystem broker's folders, in the embedded pass
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "FLAGSTAFF_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SCHEDULED_BEAT_QUEUE": queue,
        "SCHEDULED_BEAT_SECONDS": str(BEAT_SECONDS),
        "PYTHONUNBUFFERED": "1",
    }
    beat = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.integration.scheduled_beat",
        "beat",
        "--loglevel",
        "INFO",
    ]
    worker = [
        sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "solo",
        "--concurrency", "1", "--loglevel", "INFO", "--queues", queue,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    commands = [
        *([*beat, "--schedule", str(tmp_path / f"beat-{n}.schedule")] for n in range(BEATS)),
        *([*worker, "--hostname", f"scheduled-{n}@%h"] for n in range(WORKERS)),
    ]
    names = [*(f"beat-{n}" for n in range(BEATS)), *(f"worker-{n}" for n in range(WORKERS))]
    started = []
    try:
        for name, argv in zip(names, commands, strict=True):
            log = (tmp_path / f"{name}.log").open("wb")
            started.append(
                subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def logs(tmp_path: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(tmp_path.glob("*.log")))


@pytest.mark.django_db(transaction=True)
def test_scheduled_changes__two_beats_two_workers__each_applied_or_skipped_once(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    world = make_world()
    archived = make_flag()
    make_version(flag=archived)
    flag_services.publish_version(flag=archived, environment=world.environment, number=1, actor=FACTORY_ACTOR)
    soon = timezone.now() + timedelta(seconds=2)
    publish, enable, skipped = (
        scheduling.schedule_change(
            flag=flag, environment=world.environment, run_at=soon, actor=FACTORY_ACTOR, **fields
        )
        for flag, fields in (
            (world.flag, {"kind": "publish", "version": 2}),
            (world.flag, {"kind": "enable"}),
            (archived, {"kind": "enable"}),
        )
    )
    flag_services.archive_flag(flag=archived, actor=FACTORY_ACTOR, reason="retired")
    revision = Environment.objects.get(pk=world.environment.pk).revision

    deadline = time.monotonic() + WAIT_SECONDS
    while ScheduledChange.objects.pending().exists():
        assert time.monotonic() < deadline, logs(tmp_path)
        assert all(process.poll() is None for process in processes), logs(tmp_path)
        time.sleep(0.2)
    # More sweeps after the last change ended: none may apply anything again.
    time.sleep(4 * BEAT_SECONDS)

    states = dict(ScheduledChange.objects.values_list("pk", "state"))
    assert states == {
        publish.pk: ScheduledChangeState.APPLIED,
        enable.pk: ScheduledChangeState.APPLIED,
        skipped.pk: ScheduledChangeState.SKIPPED,
    }
    ours = AuditEntry.objects.filter(flag_key=world.flag.key, environment_key=world.environment.key)
    assert ours.filter(action="version.published", changes__serving_version__after=2).count() == 1
    assert ours.filter(action="flag.enabled").count() == 1
    assert AuditEntry.objects.filter(action="scheduled_change.applied").count() == 2
    assert AuditEntry.objects.filter(action="scheduled_change.skipped").count() == 1
    assert Environment.objects.get(pk=world.environment.pk).revision == revision + 2
    state = FlagState.objects.get(flag=world.flag, environment=world.environment)
    assert (state.serving_version.number if state.serving_version else None, state.enabled) == (2, True)
    # Both beats were sending, several times each, so the changes were swept concurrently.
    for n in range(BEATS):
        sent = (tmp_path / f"beat-{n}.log").read_text(errors="replace").count("Sending due task")
        assert sent >= 2, logs(tmp_path)
