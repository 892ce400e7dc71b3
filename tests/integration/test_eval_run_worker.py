"""An eval run survives a real Celery worker killed with SIGKILL mid-run, without paying twice.

Runs in both passes (SQLite + filesystem broker, PostgreSQL + Redis). The fake Anthropic server
counts every answered prompt, so the test sees exactly which cases were requested twice: only
those in flight at the kill, or answered and waiting to be stored, may be (paid, never stored).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.test import override_settings

from controlplane.audit import Actor
from controlplane.celery import app as celery_app
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals import tasks
from evals.models import CaseOutput, EvalRun, RunCase, RunCaseState, RunState
from evals.services import runs
from evals.services.runs.messages import STORE_WINDOW_SECONDS
from tests.evals.run_factories import make_eval_set_version, marker
from tests.factories import make_version
from tests.integration.test_worker import broker_options, database_url

pytestmark = pytest.mark.django_db(transaction=True)
CASES = 40
CLAIM_TIMEOUT = 3
WAIT_SECONDS = 60


@pytest.fixture
def start_worker(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start workers consuming a queue; every one still alive is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "FLAGSTAFF_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS": str(CLAIM_TIMEOUT),
    }

    def start(queue: str) -> subprocess.Popen[bytes]:
        argv = [
            sys.executable, "-m", "celery", "-A", "controlplane", "worker",
            "--pool", "solo", "--concurrency", "1", "--loglevel", "WARNING", "--queues", queue,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def send_execute(run_id: int, queue: str, options: dict[str, Any]) -> None:
    with celery_app.connection_for_write(transport_options=options) as broker, broker.Producer() as producer:
        tasks.execute_run.apply_async(args=(run_id,), queue=queue, producer=producer)


def wait_until(condition: Callable[[], bool], logs: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("worker-*.log"))))


def test_execute_run__worker_killed_mid_run__resumed_and_no_stored_case_requested_again(
    fake_anthropic: FakeAnthropic, start_worker: Callable[[str], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    fake_anthropic.latency = 0.2
    version = make_version(content={"model": "claude-sonnet-5-5", "max_tokens": 100})
    with mock.patch("evals.services.runs.lifecycle.enqueue_run"):  # the test sends the task itself
        run = runs.start_run(
            flag=version.flag,
            eval_set_version=make_eval_set_version(CASES),
            config_version=version,
            actor=Actor.system("tests"),
            concurrency=4,
        )
    queue = f"test-{uuid.uuid4().hex[:12]}"
    options = broker_options(tmp_path)
    first = start_worker(queue)
    send_execute(run.pk, queue, options)
    wait_until(lambda: EvalRun.objects.get(pk=run.pk).cases_done >= 8, tmp_path)

    first.send_signal(signal.SIGKILL)
    first.wait()
    stored_before = set(
        CaseOutput.objects.filter(content_hash=run.content_hash).values_list("case_hash", flat=True)
    )
    # Claimed at the kill: in flight, or claimed ahead and not sent yet.
    claimed = {
        row.case.position
        for row in RunCase.objects.filter(run=run, state=RunCaseState.CLAIMED).select_related("case")
    }
    time.sleep(CLAIM_TIMEOUT + 0.5)
    with (
        override_settings(FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS=CLAIM_TIMEOUT),
        mock.patch("evals.services.runs.lifecycle.enqueue_run") as swept,
    ):
        runs.sweep_runs()
    start_worker(queue)
    send_execute(run.pk, queue, options)
    wait_until(lambda: EvalRun.objects.get(pk=run.pk).state == RunState.SUCCEEDED, tmp_path)

    run.refresh_from_db()
    positions_stored_before = {
        row.case.position for row in RunCase.objects.filter(run=run).select_related("case")
        if row.case.case_hash in stored_before
    }  # fmt: skip
    repeated = {i for i in range(CASES) if fake_anthropic.times_answered(marker(i)) > 1}
    assert [call.args[0] for call in swept.call_args_list] == [run.pk]
    assert run.cases_done == CASES
    assert 8 <= len(positions_stored_before) < CASES
    assert all(fake_anthropic.times_answered(marker(i)) == 1 for i in positions_stored_before)
    assert all(fake_anthropic.times_answered(marker(i)) >= 1 for i in range(CASES))
    # Only a case claimed at the kill may have been sent again, and of those only one in flight
    # (at most the run's concurrency) or answered and waiting for the store window (at most the
    # concurrency too: no call answers twice within the window at 200 ms a call): paid, never
    # stored. Claims are also taken ahead (at most twice the concurrency), but those were never sent.
    assert fake_anthropic.latency > STORE_WINDOW_SECONDS
    assert repeated <= claimed
    assert len(repeated) <= 2 * 4
    assert len(claimed) <= 3 * 4
