"""Throwaway servers for the tests that stop or break them: PostgreSQL (initdb into a temporary
directory, pg_ctl on a free port) and redis-server on a free port. The shared PostgreSQL and
Redis are never touched. Without the binaries a test is skipped, except in CI (CI=true), where
that is a failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
REDIS_SERVER = shutil.which("redis-server")


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the resilience tests")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up within {timeout} s")


class Postgres:
    """A throwaway cluster; run as the postgres user when we are root (initdb refuses root)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.data = root / "pg"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/flagstaff"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.data.parent, "postgres")
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "flagstaff")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class Redis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        argv = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen([*argv, "--dir", str(self.root)], stdout=subprocess.DEVNULL)
        wait_for(self.accepts_connections, "Redis")

    def accepts_connections(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def throwaway_services(prefix: str) -> Iterator[tuple[Path, Postgres, Redis]]:
    """A temporary directory with a started PostgreSQL and Redis of its own; all removed after."""
    if not PG_BINARIES or not (PG_BINARIES[0] / "initdb").exists():
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if REDIS_SERVER is None:
        unavailable("redis-server is not installed")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    postgres, redis = Postgres(PG_BINARIES[0], root), Redis(root)
    try:
        postgres.init()
        redis.start()
        yield root, postgres, redis
    finally:
        redis.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by a test
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def server_env(root: Path, postgres: Postgres, redis: Redis, **settings: str) -> dict[str, str]:
    """The environment of a server process on the throwaway services (DEBUG off)."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_"))
    }
    return {
        **inherited,
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis.url,
        "CELERY_BROKER_URL": redis.url,
        "SECRET_KEY": "throwaway-test-secret-key",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FLAGSTAFF_VAR_DIR": str(root / "var"),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
