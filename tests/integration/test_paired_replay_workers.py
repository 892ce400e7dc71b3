"""Paired replay on two real Celery workers racing for the same control samples: each sample is
replayed (and paid for) once, and counted once in the pairs' rollups.

PostgreSQL + Redis only: the embedded SQLite database serialises writers, so it cannot show a race.
"""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from controlplane.celery import app as celery_app
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from rollouts import tasks
from rollouts.models import PairedReplay, PairedReplayRollup, ReplaySpend, ReplayState
from tests.integration.test_live_scoring_workers import WAIT_SECONDS, two_workers  # noqa: F401 (fixture)
from tests.rollouts.replay_factories import ingest_control, make_replay_world, make_replaying_rollout

SAMPLES = 120
TICKS = 8

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") != "1",
        reason="two workers racing need PostgreSQL + Redis (the services pass)",
    ),
]


@pytest.fixture
def workers_at_the_fake(fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch):
    """The workers' settings come from the environment they start with: aim it at the fake."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    return fake_anthropic


@pytest.mark.django_db(transaction=True)
def test_replay_control_samples__two_workers_racing__every_sample_replayed_exactly_once(
    workers_at_the_fake,
    two_workers,  # noqa: F811 (the fixture imported above)
):
    fake = workers_at_the_fake
    queue, logs = two_workers
    assert connection.vendor == "postgresql"
    world = make_replay_world()
    rollout = make_replaying_rollout(world)
    markers = ingest_control(world.environment, rollout, outputs=["ok"] * SAMPLES, at=timezone.now())
    for index, marker in enumerate(markers):
        fake.script_reply(marker, "ok" if index % 4 else "no")  # the candidate fails a quarter

    with celery_app.connection_for_write() as broker, broker.Producer() as producer:
        for _ in range(TICKS):
            # Each tick may take twice its share, so the two workers' claims overlap.
            tasks.replay_control_samples.apply_async(
                kwargs={"limit": 2 * SAMPLES // TICKS}, queue=queue, producer=producer
            )

    deadline = time.monotonic() + WAIT_SECONDS
    while (
        time.monotonic() < deadline and PairedReplay.objects.filter(state=ReplayState.DONE).count() < SAMPLES
    ):
        time.sleep(0.3)

    worker_logs = "\n".join(path.read_text(errors="replace") for path in logs)
    assert PairedReplay.objects.filter(state=ReplayState.DONE).count() == SAMPLES, worker_logs
    assert fake.repeated_prompts() == {}
    assert sum(fake.times_answered(marker) for marker in markers) == SAMPLES
    totals = PairedReplayRollup.objects.aggregate(n=Sum("n"), d=Sum("d_sum"), d2=Sum("d_sq_sum"))
    assert totals == {"n": SAMPLES, "d": -SAMPLES // 4, "d2": SAMPLES // 4}
    assert ReplaySpend.objects.get(rollout=rollout).calls == SAMPLES
    assert "Traceback" not in worker_logs
    tokens = PairedReplay.objects.values_list("worker", flat=True)
    assert len({token.split("-")[0] for token in tokens}) == 2  # both worker processes replayed
