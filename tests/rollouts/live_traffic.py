"""A rollout driven by real traffic, for the end-to-end test and the browser's rollout flow.

The world is the demo's (demo/scenario.py, demo/seed.py): the `flagstaff` client resolves the
flag locally and calls the fake Anthropic server through the real `anthropic` SDK
(demo/traffic.py), its telemetry batches go in through the API, live scoring judges every
sampled call, and the analysis tick is the service beat's task runs.

Fast without weakening the statistics (the analysis, its levels and margins are the production
ones; only the plan and the driving are compressed):
- the plan's first stage is 10 % (then 50 %, then everyone), so a fifth of the users are in the
  analysis where a 1 % stage puts a fiftieth; no minimum durations (`STAGES`);
- only users in the canary or the control arm make a Claude call (the others tell the analysis
  nothing); calls go out from a thread pool;
- telemetry goes in the client's batches, flushed after each round of traffic;
- after each round, live scoring runs until every sample is scored and then the tick service
  (the function beat's task runs on the worker) at the rollout's next tick time, rather than
  waiting for beat.
Each round sends `PER_ARM` calls to each arm: at 300 judged calls per arm a 15-point drop shows
(lower bound about 3.5 points against the 2-point margin, at the critical level), while showing
the API error rate non-inferior within 1 point needs about 550 calls per arm with no errors, so a
healthy stage takes two rounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import anthropic
import pytest
from django.test import override_settings
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from controlplane.audit import Actor
from controlplane.services import create_api_token
from demo import scenario
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from demo.traffic import Traffic
from evals.services import live_scoring
from flags.models import Environment
from flagstaff import Flagstaff
from rollouts.models import Rollout
from rollouts.services import ticks

PER_ARM = 300
MAX_ROUNDS = 6
STAGES = scenario.stages(min_duration_seconds=0, min_per_arm=100)


@pytest.fixture
def fast_stream() -> Iterator[None]:
    """The change stream's keep-alive short, so a closed client's stream ends at once."""
    with override_settings(FLAGSTAFF_STREAM_KEEPALIVE_SECONDS=0.2, FLAGSTAFF_STREAM_MAX_SECONDS=60):
        yield


@contextmanager
def service_traffic(
    *, url: str, environment: Environment, anthropic_url: str, cache_dir: Path, actor: Actor
) -> Iterator[Traffic]:
    """The support service of `environment`: its own token, the client against the API at `url`
    and the SDK against the fake Anthropic API at `anthropic_url`, every call sampled."""
    token = create_api_token(
        name="support-service", scopes=["resolve", "telemetry"], environment=environment, actor=actor
    )
    with (
        anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=anthropic_url, max_retries=0) as sdk,
        Flagstaff(
            url=url,
            token=token.secret,
            environment=environment.key,
            cache_path=cache_dir / f"{environment.key}.json",
            poll_interval=60.0,
            anthropic_client=sdk,
            telemetry=True,
            sample_rates={scenario.FLAG: 1.0},
        ) as client,
        Traffic(client, threads=8) as traffic,
    ):
        yield traffic


@pytest.fixture
def traffic(
    live_server: LiveServer, production: Environment, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> Iterator[Traffic]:
    """The support service of the test's `production` environment (a fixture of the test's own)."""
    with service_traffic(
        url=live_server.url,
        environment=production,
        anthropic_url=fake_anthropic.base_url,
        cache_dir=tmp_path,
        actor=Actor.system("tests"),
    ) as traffic:
        yield traffic


def score_everything() -> None:
    while live_scoring.score_new_samples().claimed:
        pass


def run_round(traffic: Traffic, rollout: Rollout) -> Rollout:
    """One round: once the client serves the environment's revision, `PER_ARM` calls to each arm,
    their telemetry in, every sample scored, then the rollout's tick. Returns the rollout after."""
    client = traffic.client
    assert client.wait_for_revision(Environment.objects.get(pk=rollout.environment_id).revision, timeout=10)
    traffic.send_until(PER_ARM)
    assert client.telemetry is not None
    assert client.telemetry.flush(timeout=30)
    score_everything()
    rollout.refresh_from_db()
    assert rollout.next_tick_at is not None
    # The tick is due at next_tick_at (at most a second away): run it for that moment.
    now = max(timezone.now(), rollout.next_tick_at) + timedelta(milliseconds=1)
    assert ticks.tick_rollout(rollout_id=rollout.pk, now=now) is not None
    rollout.refresh_from_db()
    return rollout
