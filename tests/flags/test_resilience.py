"""Serving through outages, against real processes: gunicorn, PostgreSQL and Redis of our own.

Every server here is a throwaway started for this module (initdb into a temporary directory,
redis-server on a free port); the shared PostgreSQL and Redis are never touched. Without the
binaries the module is skipped, except in CI (CI=true), where that is a failure.
KEEP_RESILIENCE_LOG=1 prints the server's log at the end (run with -s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.flags.throwaway import REPO, Postgres, Redis, free_port, server_env, throwaway_services, wait_for

SEED = """
import json
from flags import services
from tests.factories import FACTORY_ACTOR, VALID_CONTENT
from tests.factories import make_environment, make_flag, make_token, make_version

environment = make_environment(key="production")
flag = make_flag(key="support-chat")
make_version(flag=flag)
make_version(flag=flag, content={**VALID_CONTENT, "max_tokens": 2048})
services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=FACTORY_ACTOR)
services.set_split(flag=flag, environment=environment, candidate=2, weight=5000, actor=FACTORY_ACTOR)
print(json.dumps({
    "resolve": make_token(scopes=["resolve"], environment=environment).secret,
    "write": make_token(scopes=["read", "write"]).secret,
}))
"""


class Cluster:
    """gunicorn (one gthread worker: the warmed process is the one asked) on PostgreSQL and Redis."""

    def __init__(self, root: Path, postgres: Postgres, redis: Redis) -> None:
        self.root = root
        self.postgres = postgres
        self.redis = redis
        self.port = free_port()
        self.log = root / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.secrets: dict[str, str] = {}
        self.env = server_env(
            root,
            postgres,
            redis,
            FLAGSTAFF_REVISION_CHECK_SECONDS="0.2",
            FLAGSTAFF_TOKEN_CACHE_SECONDS="0.5",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return result.stdout

    def start(self) -> None:
        self.manage("migrate", "--no-input")
        self.secrets = json.loads(self.manage("shell", "-c", SEED).strip().splitlines()[-1])
        argv = [sys.executable, "-m", "gunicorn", "controlplane.wsgi:application"]
        argv += ["--config", str(REPO / "controlplane" / "gunicorn_conf.py")]
        argv += ["--bind", f"127.0.0.1:{self.port}", "--workers", "1"]
        argv += ["--threads", "8", "--timeout", "60"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=2).ok, "gunicorn")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def post(self, path: str, body: Any, as_: str = "resolve", method: str = "POST") -> requests.Response:
        headers = {"Authorization": f"Bearer {self.secrets[as_]}"}
        return requests.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=10)

    def get(self, path: str, **headers: str) -> requests.Response:
        headers["Authorization"] = f"Bearer {self.secrets['resolve']}"
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_services("flagstaff-resilience-") as (root, postgres, redis):
        cluster = Cluster(root, postgres, redis)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
            if os.environ.get("KEEP_RESILIENCE_LOG"):
                print(cluster.log_text())


RESOLVE = {"flag": "support-chat", "environment": "production", "context": {"targetingKey": "user-7"}}


def serve_everything(cluster: Cluster) -> dict[str, Any]:
    """Resolve, bulk resolve, OFREP single and bulk, and the snapshot; each must be a 200."""
    responses = {
        "resolve": cluster.post("/api/v1/resolve", RESOLVE),
        "bulk": cluster.post("/api/v1/resolve/bulk", {"context": {"targetingKey": "user-7"}}),
        "ofrep": cluster.post(
            "/ofrep/v1/evaluate/flags/support-chat", {"context": {"targetingKey": "user-7"}}
        ),
        "ofrep_bulk": cluster.post("/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "user-7"}}),
        "snapshot": cluster.get("/api/v1/environments/production/snapshot"),
    }
    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(responses, 200)
    return {name: r.json() for name, r in responses.items()}


def test_serving__postgres_stopped__last_snapshot_keeps_serving_every_endpoint(cluster: Cluster) -> None:
    warm = serve_everything(cluster)
    time.sleep(0.6)  # past the token cache: the outage path must reuse the token it knew

    cluster.postgres.stop()
    try:
        time.sleep(0.3)  # past the revision check interval: the next read tries the database
        during = serve_everything(cluster)
        health = requests.get(f"{cluster.url}/healthz", timeout=10)
    finally:
        cluster.postgres.start()

    assert health.status_code == 503  # the outage is real
    assert during["resolve"] == warm["resolve"]
    assert during["ofrep"] == warm["ofrep"]
    assert during["snapshot"]["revision"] == warm["snapshot"]["revision"]


def test_serving__postgres_back__changes_served_again(cluster: Cluster) -> None:
    before = cluster.post("/api/v1/resolve", RESOLVE).json()["metadata"]["revision"]

    split = {"weight": 10000, "candidate": 2}
    response = cluster.post(
        "/api/v1/flags/support-chat/environments/production/split/", split, "write", "PUT"
    )
    assert response.status_code == 200, response.text

    wait_for(
        lambda: cluster.post("/api/v1/resolve", RESOLVE).json()["metadata"]["revision"] > before, "the write"
    )


def test_serving__redis_stopped__serving_continues_and_one_warning_logged(cluster: Cluster) -> None:
    warm = cluster.post("/api/v1/resolve", RESOLVE).json()

    cluster.redis.stop()
    try:
        time.sleep(1.5)  # the listener notices the closed connection
        during = cluster.post("/api/v1/resolve", RESOLVE)
        ofrep = cluster.post("/ofrep/v1/evaluate/flags/support-chat", {"context": {"targetingKey": "user-7"}})
        # A write whose announcement cannot be published: the revision check finds it.
        cluster.post(
            "/api/v1/flags/support-chat/environments/production/disable/",
            {"reason": "outage drill"},
            as_="write",
        )
        wait_for(
            lambda: cluster.post("/api/v1/resolve", RESOLVE).json()["reason"] == "DISABLED",
            "the change",
            timeout=10,
        )
        for _ in range(5):
            assert cluster.post("/api/v1/resolve", RESOLVE).status_code == 200
    finally:
        cluster.redis.start()

    assert (during.status_code, during.json()["flag_state"]) == (200, warm["flag_state"])
    assert ofrep.status_code == 200
    assert cluster.log_text().count("Redis is unreachable") == 1


def test_serving__redis_back__announcements_followed_again(cluster: Cluster) -> None:
    wait_for(
        lambda: "Redis is reachable again" in cluster.log_text(), "the listener's reconnection", timeout=15
    )

    cluster.post(
        "/api/v1/flags/support-chat/environments/production/enable/", {"reason": "drill over"}, as_="write"
    )

    wait_for(
        lambda: cluster.post("/api/v1/resolve", RESOLVE).json()["reason"] != "DISABLED",
        "the change",
        timeout=10,
    )


def test_serving__postgres_and_redis_stopped__still_serving(cluster: Cluster) -> None:
    warm = cluster.post("/api/v1/resolve", RESOLVE).json()

    cluster.redis.stop()
    cluster.postgres.stop()
    try:
        time.sleep(1.0)
        responses = [cluster.post("/api/v1/resolve", RESOLVE) for _ in range(3)]
        snapshot = cluster.get("/api/v1/environments/production/snapshot")
    finally:
        cluster.postgres.start()
        cluster.redis.start()

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[-1].json()["flag_state"] == warm["flag_state"]
    assert snapshot.status_code == 200
    # Without Redis the process checked the revision, found no database, and said so.
    assert "database unreachable" in cluster.log_text()
