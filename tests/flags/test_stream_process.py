"""The stream process under a real uvicorn, with real `flagstaff` clients: pushed changes, the
older formats, Last-Event-ID, capacity, and the faults (the process killed mid-change, Redis
restarted). gunicorn serves the API beside it; PostgreSQL and Redis are throwaway servers of
this module (tests/flags/throwaway.py). KEEP_STREAM_LOG=1 prints the servers' logs (run with -s).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from controlplane.management.commands.serve import stream_command
from flags.serving.acks import stream_reach
from flagstaff import Flagstaff
from tests.flags.test_resilience import SEED
from tests.flags.throwaway import REPO, Postgres, Redis, free_port, server_env, throwaway_services, wait_for

ENVIRONMENT = "production"
SPLIT_PATH = "/api/v1/flags/support-chat/environments/production/split/"
SNAPSHOT_PATH = "/api/v1/environments/production/snapshot"
STREAM_PATH = "/api/v1/environments/production/stream"


class Servers:
    """gunicorn (the API) and uvicorn (the streams) on a throwaway PostgreSQL and Redis."""

    def __init__(
        self, root: Path, postgres: Postgres, redis: Redis, seed: str = SEED, **settings: str
    ) -> None:
        self.root = root
        self.seed = seed
        self.postgres = postgres
        self.redis = redis
        self.web_port, self.stream_port = free_port(), free_port()
        self.access_log = root / "access.log"
        self.web_log, self.stream_log = root / "web.log", root / "stream.log"
        self.web: subprocess.Popen[bytes] | None = None
        self.stream: subprocess.Popen[bytes] | None = None
        self.secrets: dict[str, str] = {}
        self.env = server_env(
            root,
            postgres,
            redis,
            FLAGSTAFF_STREAM_URL=f"http://127.0.0.1:{self.stream_port}",
            FLAGSTAFF_STREAM_KEEPALIVE_SECONDS="0.5",
            FLAGSTAFF_REVISION_CHECK_SECONDS="0.2",
            FLAGSTAFF_REVISION_RECHECK_SECONDS="3",
            LOG_LEVEL="INFO",
            **settings,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> None:
        def manage(*argv: str) -> str:
            return subprocess.run(
                [sys.executable, "manage.py", *argv],
                cwd=REPO,
                env=self.env,
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            ).stdout

        manage("migrate", "--no-input")
        self.secrets = json.loads(manage("shell", "-c", self.seed).strip().splitlines()[-1])
        argv = [sys.executable, "-m", "gunicorn", "controlplane.wsgi:application"]
        argv += ["--config", str(REPO / "controlplane" / "gunicorn_conf.py")]
        argv += ["--bind", f"127.0.0.1:{self.web_port}", "--workers", "1", "--threads", "8"]
        argv += ["--timeout", "60", "--access-logfile", str(self.access_log)]
        with self.web_log.open("ab") as log:
            self.web = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=2).ok, "gunicorn", timeout=120)
        self.start_stream()

    def start_stream(self, **env: str) -> None:
        with self.stream_log.open("ab") as log:
            self.stream = subprocess.Popen(
                stream_command("127.0.0.1", self.stream_port),
                cwd=REPO,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{self.stream_port}/healthz", timeout=2).ok,
            "the stream process",
            timeout=120,
        )

    def stop_stream(self, sig: int = signal.SIGTERM) -> None:
        if self.stream is not None and self.stream.poll() is None:
            self.stream.send_signal(sig)
            self.stream.wait(timeout=20)
        self.stream = None

    def stop(self) -> None:
        self.stop_stream()
        if self.web is not None and self.web.poll() is None:
            self.web.terminate()
            self.web.wait(timeout=20)

    def change(self, weight: int) -> int:
        """A split change through the API; the environment's new revision."""
        response = requests.put(
            f"{self.url}{SPLIT_PATH}",
            json={"candidate": 2, "weight": weight},
            headers={"Authorization": f"Bearer {self.secrets['write']}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return self.revision()

    def revision(self) -> int:
        response = requests.get(
            f"{self.url}{SNAPSHOT_PATH}",
            headers={"Authorization": f"Bearer {self.secrets['resolve']}"},
            timeout=10,
        )
        revision: int = response.json()["revision"]
        return revision

    def snapshot_fetches(self) -> int:
        """Snapshot requests the web process has logged (a line is written after its answer)."""
        time.sleep(1.0)
        return self.access_log.read_text().count(f"GET {SNAPSHOT_PATH}")

    def open_stream(self, query: str = "", **headers: str) -> RawStream:
        return RawStream(
            self.stream_port,
            f"{STREAM_PATH}?{query}",
            {"Authorization": f"Bearer {self.secrets['resolve']}", **headers},
        )


class RawStream:
    """A stream read with a plain HTTP client, event by event."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()

    def event(self) -> tuple[str, str, dict[str, Any]]:
        """The next (event, id, data), past keep-alives and the retry hint."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line == "":
                if "event" in fields:
                    return fields["event"], fields["id"], json.loads(fields["data"])
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.strip()

    def close(self) -> None:
        self.response.close()
        self.connection.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with throwaway_services("flagstaff-streams-") as (root, postgres, redis):
        servers = Servers(root, postgres, redis)
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()
            if os.environ.get("KEEP_STREAM_LOG"):
                print(
                    servers.web_log.read_text(errors="replace"),
                    servers.stream_log.read_text(errors="replace"),
                )


@pytest.fixture
def clients(servers: Servers) -> Iterator[list[Flagstaff]]:
    opened = [
        Flagstaff(
            url=servers.url, token=servers.secrets["resolve"], environment=ENVIRONMENT, refresh="stream"
        )
        for _ in range(5)
    ]
    wait_for(lambda: all(client.revision is not None for client in opened), "the clients' snapshots")
    yield opened
    for client in opened:
        client.close(timeout=2)


def all_reach(clients: list[Flagstaff], revision: int, timeout: float = 15.0) -> bool:
    return all(client.wait_for_revision(revision, timeout) for client in clients)


def test_stream_process__split_changed__clients_apply_the_pushed_change_without_a_fetch(
    servers: Servers, clients: list[Flagstaff]
) -> None:
    servers.change(1500)  # the clients' streams are open once they have had one change pushed
    assert all_reach(clients, servers.revision())
    fetches = servers.snapshot_fetches()

    revision = servers.change(2000)

    assert all_reach(clients, revision)
    assert [client.resolve("support-chat", {"targetingKey": "u-1"}).revision for client in clients] == [
        revision
    ] * 5
    assert all(client.revision_received_at is not None for client in clients)
    assert servers.snapshot_fetches() == fetches + 1  # only the test's own revision() call


def test_stream_process__default_format__revision_events_for_existing_clients(servers: Servers) -> None:
    stream = servers.open_stream(**{"Last-Event-ID": "0"})
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream"
        revision = servers.revision()
        assert stream.event() == (
            "revision",
            str(revision),
            {"environment": ENVIRONMENT, "revision": revision},
        )
    finally:
        stream.close()


@pytest.mark.parametrize("last_event_id", ["garbage", "99999999", "-4"])
def test_stream_process__last_event_id_garbage_or_from_the_future__resync_not_an_error(
    servers: Servers, last_event_id: str
) -> None:
    stream = servers.open_stream("format=changes", **{"Last-Event-ID": last_event_id})
    try:
        event, event_id, data = stream.event()
    finally:
        stream.close()

    revision = servers.revision()
    assert (stream.response.status, event, event_id) == (200, "resync", str(revision))
    assert data["revision"] == revision
    assert data["spread"] >= 1


def test_stream_process__last_event_id_behind__changes_from_that_revision(
    servers: Servers, clients: list[Flagstaff]
) -> None:
    before = servers.revision()  # compiled (and cached in Redis) by the web process
    after = servers.change(3000)
    assert all_reach(clients, after)

    stream = servers.open_stream("format=changes", **{"Last-Event-ID": str(before)})
    try:
        event, event_id, data = stream.event()
    finally:
        stream.close()

    assert (event, event_id, data["from"], data["revision"]) == ("changes", str(after), before, after)
    assert data["flags"]["support-chat"]["rollout"]["weight"] == 3000


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads thread counts from Linux /proc")
def test_stream_process__twenty_streams_open__one_request_thread_for_all(servers: Servers) -> None:
    assert servers.stream is not None
    before = threads(servers.stream.pid)
    streams = [servers.open_stream("format=changes", **{"Last-Event-ID": "garbage"}) for _ in range(20)]
    try:
        assert all(stream.event()[0] == "resync" for stream in streams)  # each past its checks
        during = threads(servers.stream.pid)
    finally:
        for stream in streams:
            stream.close()

    # asgiref's default, a thread per request kept for the request's life, would add twenty.
    assert during - before <= 1


def test_stream_process__killed_mid_change__clients_reconnect_and_end_on_the_right_revision(
    servers: Servers, clients: list[Flagstaff]
) -> None:
    servers.change(3500)
    assert all_reach(clients, servers.revision())

    servers.change(4000)
    servers.stop_stream(signal.SIGKILL)
    servers.change(4500)
    servers.start_stream()
    revision = servers.change(5000)

    assert all_reach(clients, revision, timeout=30)
    fetches = servers.snapshot_fetches()
    # Streaming again, from where each client was: the next change is pushed.
    pushed = servers.change(5500)
    assert all_reach(clients, pushed)
    assert servers.snapshot_fetches() == fetches + 1


def test_stream_process__redis_restarted__resubscribed_and_the_missed_change_found(
    servers: Servers, clients: list[Flagstaff]
) -> None:
    servers.change(6000)
    assert all_reach(clients, servers.revision())

    servers.redis.stop()
    try:
        # Its announcement is lost: the stream process's revision checks find it.
        missed = servers.change(6500)
        assert all_reach(clients, missed)
    finally:
        servers.redis.start()
    wait_for(
        lambda: servers.stream_log.read_text().count("subscribed to revision announcements") >= 2,
        "the resubscription",
    )

    revision = servers.change(7000)

    assert all_reach(clients, revision, timeout=5)


def test_stream_process__at_capacity__503_stream_capacity_with_retry_after(servers: Servers) -> None:
    servers.stop_stream()
    servers.start_stream(FLAGSTAFF_STREAM_PROCESS_CAPACITY="1")
    try:
        first = servers.open_stream("format=changes")
        second = servers.open_stream("format=changes")
        body = json.loads(second.response.read())
        first.close()
        second.close()
    finally:
        servers.stop_stream()
        servers.start_stream()

    assert first.response.status == 200
    assert (second.response.status, second.response.getheader("Retry-After")) == (503, "2")
    assert body["code"] == "stream_capacity"


REHEARSAL_SEED = """
import json
from flags import services
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_token, make_version

environment = make_environment(key="staging")
flag = make_flag(key="rehearsed")
make_version(flag=flag)
services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=FACTORY_ACTOR)
print(json.dumps({
    "resolve": make_token(scopes=["resolve"], environment=environment).secret,
    "read": make_token(scopes=["read"]).secret,
}))
"""


@pytest.mark.skipif(
    os.environ.get("FLAGSTAFF_REQUIRE_SERVICES") != "1", reason="a rollback rehearsal: the services pass only"
)
def test_rollback_rehearsal__streaming_clients__three_times_recorded_every_stream_reached(
    servers: Servers,
) -> None:
    """`manage.py rehearse_rollback` as an operator runs it, against this process and gunicorn,
    with five clients following the stream of a staging environment."""

    def manage(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=REPO,
            env={**servers.env, **env},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    secrets = json.loads(manage("shell", "-c", REHEARSAL_SEED).stdout.strip().splitlines()[-1])
    read = {"Authorization": f"Bearer {secrets['read']}"}
    clients = [Flagstaff(url=servers.url, token=secrets["resolve"], environment="staging") for _ in range(5)]
    try:
        wait_for(
            lambda: stream_reach(servers.redis.url, "staging", 0).connected >= 5, "five reported streams"
        )

        ran = manage(
            "rehearse_rollback",
            "rehearsed",
            "staging",
            "--reason",
            "drill",
            FLAGSTAFF_REHEARSAL_API_URL=servers.url,
        )

        assert ran.returncode == 0, ran.stdout + ran.stderr
        [rehearsal] = requests.get(
            f"{servers.url}/api/v1/rehearsals/?flag=rehearsed", headers=read, timeout=10
        ).json()["results"]
        assert rehearsal["state"] == "passed", rehearsal
        for key in ("snapshot_seconds", "stream_seconds", "probe_seconds"):
            assert 0 <= rehearsal[key] <= rehearsal["threshold_seconds"]
        # The five clients and the rehearsal's own probe were connected; every one had the revision.
        assert rehearsal["clients_connected"] >= 6
        assert rehearsal["clients_reached"] == rehearsal["clients_connected"]
        steps = [step["step"] for step in rehearsal["steps"]]
        assert steps[:3] == ["probe_connected", "candidate_created", "canary_started"]
        assert {
            "canary_seen",
            "rolled_back",
            "snapshot_served",
            "streams_reached",
            "probe_on_baseline",
        } <= set(steps)
        rollout = requests.get(
            f"{servers.url}/api/v1/rollouts/{rehearsal['rollout']}/", headers=read, timeout=10
        )
        assert rollout.json()["state"] == "rolled_back"
        revision = requests.get(
            f"{servers.url}/api/v1/environments/staging/snapshot",
            headers={"Authorization": f"Bearer {secrets['resolve']}"},
            timeout=10,
        ).json()["revision"]
        for client in clients:
            assert client.wait_for_revision(revision, 10)
            served = {client.resolve("rehearsed", {"targetingKey": f"user-{n}"}).version for n in range(200)}
            assert served == {1}
    finally:
        for client in clients:
            client.close(timeout=2)
