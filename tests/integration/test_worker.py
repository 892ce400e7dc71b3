"""A real Celery worker, a real broker and the test database: the path production takes.

Runs in both passes: SQLite + kombu's filesystem broker, and PostgreSQL + Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from controlplane.celery import app as celery_app
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic, model_info
from flags import tasks
from flags.models import ClaudeModel

REQUIRE_SERVICES = os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") == "1"
WAIT_SECONDS = 30


def database_url() -> str:
    """The URL of the database this test runs on (the test database, not the configured one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    assert connection.vendor == "postgresql"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgresql://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def broker_options(var_dir: Path) -> dict[str, Any]:
    """Transport options for the filesystem broker under `var_dir`, laid out as settings.py does."""
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return {}
    queue, processed = var_dir / "broker" / "queue", var_dir / "broker" / "processed"
    queue.mkdir(parents=True)
    processed.mkdir(parents=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "store_processed": False,
    }


@pytest.fixture
def worker(tmp_path: Path, fake_anthropic: FakeAnthropic) -> Iterator[str]:
    """Start a worker consuming a queue of its own; yield the queue name; stop the worker."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        # The broker folders (filesystem transport) follow FLAGSTAFF_VAR_DIR; Redis uses the URL.
        "FLAGSTAFF_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
    }
    argv = [
        sys.executable, "-m", "celery", "-A", "controlplane", "worker",
        "--pool", "solo", "--concurrency", "1", "--loglevel", "WARNING", "--queues", queue,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield queue
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for(model_id: str) -> ClaudeModel | None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = ClaudeModel.objects.filter(model_id=model_id).first()
        if found is not None:
            return found
        time.sleep(0.2)
    return None


@pytest.mark.django_db(transaction=True)
def test_sync_models__sent_through_broker__worker_stores_new_model(
    worker: str, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.models.insert(0, model_info("claude-opus-6"))

    with (
        celery_app.connection_for_write(transport_options=broker_options(tmp_path)) as broker,
        broker.Producer() as producer,
    ):
        tasks.sync_models.apply_async(queue=worker, producer=producer)

    stored = wait_for("claude-opus-6")
    assert stored is not None, (tmp_path / "worker.log").read_text(errors="replace")
    assert stored.source == "models_api"


@pytest.mark.skipif(
    not REQUIRE_SERVICES, reason="only the PostgreSQL + Redis pass sets FLAGSTAFF_REQUIRE_SERVICES"
)
def test_services_pass__required__runs_on_postgresql_and_redis() -> None:
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
