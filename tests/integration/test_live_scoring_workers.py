"""Live scoring on two real Celery workers racing for the same samples: each is scored once.

PostgreSQL + Redis only: the embedded SQLite database serialises writers, so it cannot show a race.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from controlplane.celery import app as celery_app
from evals import tasks
from evals.models import ClaimState, LiveScore, LiveScoreClaim, LiveScoreRollup
from tests.evals.live_factories import ingest_samples, make_policy
from tests.factories import make_environment, make_flag, make_version
from tests.integration.test_worker import database_url
from tests.telemetry.call_factories import seed_prices

SAMPLES = 1200
TICKS = 16
WAIT_SECONDS = 90

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") != "1",
        reason="two workers racing need PostgreSQL + Redis (the services pass)",
    ),
]


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """Two solo-pool workers consuming one queue of their own; yield the queue and their logs."""
    queue = f"test-live-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    processes, logs = [], []
    for index in range(2):
        log_path = tmp_path / f"worker-{index}.log"
        argv = [
            sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--hostname", f"live{index}@%h",
            "--pool", "solo", "--concurrency", "1", "--prefetch-multiplier", "1", "--loglevel", "WARNING",
            "--queues", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        log = log_path.open("wb")
        processes.append(
            (
                subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT),
                log,
            )
        )
        logs.append(log_path)
    try:
        _wait_until_both_answer([f"live{index}@{socket.gethostname()}" for index in range(2)])
        yield queue, logs
    finally:
        for process, _log in processes:
            process.terminate()
        for process, log in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_until_both_answer(names: list[str]) -> None:
    """Both workers consume before any tick is queued: otherwise the first one up, on a loaded
    machine, can drain the queue alone and the race under test never happens."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        replies = celery_app.control.ping(destination=names, timeout=1.0) or []
        if len(replies) == len(names):
            return
    pytest.fail(f"workers {names} did not answer a ping within {WAIT_SECONDS} s")


@pytest.mark.django_db(transaction=True)
def test_score_live_samples__two_workers_racing__every_sample_scored_exactly_once(two_workers):
    queue, logs = two_workers
    assert connection.vendor == "postgresql"
    seed_prices()
    environment = make_environment(key="production")
    version = make_version(flag=make_flag(key="support-chat"))
    make_policy(version)
    now = datetime.now(UTC).replace(microsecond=0)
    ingest_samples(environment, version, texts=["ok", "no"] * (SAMPLES // 2), at=now, arm="candidate")

    with celery_app.connection_for_write() as broker, broker.Producer() as producer:
        for _ in range(TICKS):
            # Each tick may take up to twice its share, so the two workers' claims overlap.
            tasks.score_live_samples.apply_async(
                kwargs={"limit": 2 * SAMPLES // TICKS}, queue=queue, producer=producer
            )

    deadline = time.monotonic() + WAIT_SECONDS
    while (
        time.monotonic() < deadline and LiveScoreClaim.objects.filter(state=ClaimState.DONE).count() < SAMPLES
    ):
        time.sleep(0.3)

    worker_logs = "\n".join(path.read_text(errors="replace") for path in logs)
    assert LiveScoreClaim.objects.filter(state=ClaimState.DONE).count() == SAMPLES, worker_logs
    assert LiveScore.objects.count() == SAMPLES
    totals = LiveScoreRollup.objects.aggregate(n=Sum("n"), passed=Sum("passed"))
    assert totals == {"n": SAMPLES, "passed": SAMPLES // 2}
    assert "Traceback" not in worker_logs
    tokens = LiveScoreClaim.objects.values_list("worker", flat=True)
    assert len({token.split("-")[0] for token in tokens}) == 2  # both worker processes scored
