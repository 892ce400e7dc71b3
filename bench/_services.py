"""Shared set-up for the HTTP benchmarks: a database, a Redis db, gunicorn, seed data.

Not a benchmark itself (`make bench` runs bench/bench_*.py only). Everything started here is
stopped by the caller's `try/finally` through `Setup.close()`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "controlplane" / "gunicorn_conf.py"
PG_SERVER = "postgresql://root@127.0.0.1:5432"
REDIS_SERVER = "redis://127.0.0.1:6379"
FLAG_KEY = "support-chat"
ENVIRONMENT = "production"

# Three rules that the benchmark contexts never match, and a 10 % split: the shape of item 11.
RULES: list[dict[str, Any]] = [
    {
        "constraints": [{"contextName": "plan", "operator": "IN", "values": ["enterprise", "team"]}],
        "version": 2,
    },
    {
        "constraints": [
            {
                "contextName": "email",
                "operator": "STR_ENDS_WITH",
                "values": ["@example.com"],
                "caseInsensitive": True,
            }
        ],
        "version": 3,
    },
    {"constraints": [{"contextName": "appVersion", "operator": "SEMVER_LT", "value": "2.0.0"}], "version": 4},
]

SEED_SCRIPT = """
import json
from controlplane.audit import Actor
from controlplane.services import create_api_token
from flags import services
rules = json.loads({rules!r})
actor = Actor.system("bench")
# Unprotected: the benchmarks change rules and splits without giving reasons.
env = services.create_environment(key={environment!r}, name="Production", actor=actor, protected=False)
flag = services.create_flag(key={flag!r}, name="Support chat", surface="chat", actor=actor)
for number in range(1, 6):
    content = {{"model": "claude-sonnet-5-5", "max_tokens": 256 * number, "system": f"You are v{{number}}."}}
    services.create_version(flag=flag, content=content, actor=actor)
services.publish_version(flag=flag, environment=env, number=1, actor=actor)
services.set_flag_enabled(flag=flag, environment=env, enabled=True, actor=actor)
for rule in rules:
    services.add_rule(flag=flag, environment=env, constraints=rule["constraints"], segments=[],
                      version=rule["version"], description="bench", actor=actor)
services.set_split(flag=flag, environment=env, candidate=5, weight=1000, actor=actor)
serve = create_api_token(name="bench-resolve", scopes=["resolve"], actor=actor, environment=env)
write = create_api_token(name="bench-write", scopes=["read", "write"], actor=actor)
env.refresh_from_db()
print(json.dumps({{"resolve": serve.secret, "write": write.secret, "revision": env.revision}}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a gunicorn master and its workers), from Linux /proc."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # it has exited
            continue
        pending.extend(int(child) for child in children)
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc); a process that has
    exited counts no more."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def cpu_times() -> list[int]:
    """The machine's CPU time counters in clock ticks (/proc/stat: user nice system idle iowait
    irq softirq steal)."""
    with open("/proc/stat") as stat:
        return [int(value) for value in stat.readline().split()[1:9]]


def busy_cores(before: list[int], after: list[int], seconds: float) -> float:
    """How many cores the whole machine kept busy between two cpu_times() readings `seconds`
    apart: every counter but idle and iowait (steal included: time the hypervisor gave to
    other guests was not free for this one)."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    busy = sum(spent) - spent[3] - spent[4]
    return busy / os.sysconf("SC_CLK_TCK") / seconds


def _drop_database(name: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_database(name: str) -> None:
    _drop_database(name)
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Setup:
    """PostgreSQL database + Redis db + gunicorn, seeded with one flag. `close()` undoes it all."""

    database: str
    redis_db: int
    workers: int
    threads: int
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    """gunicorn's port; 0: a free one."""
    access_log: str = ""
    """A file for gunicorn's access log (a line per request); empty: none."""
    server: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    revision: int = 0
    var_dir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    _created: bool = False
    _redis_flushed: bool = False

    @property
    def redis_url(self) -> str:
        return f"{REDIS_SERVER}/{self.redis_db}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.var_dir = tempfile.mkdtemp(prefix="flagstaff-bench-")
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{PG_SERVER}/{self.database}",
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
            "SECRET_KEY": "bench-only-secret-key-not-for-production",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "FLAGSTAFF_VAR_DIR": self.var_dir,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": str(ROOT),
            **self.extra_env,
        }
        try:
            _create_database(self.database)
        except psycopg.OperationalError as exc:
            raise SystemExit(
                f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); try `make services`."
            ) from None
        self._created = True
        try:
            redis.Redis.from_url(self.redis_url).flushdb()
        except redis.RedisError as exc:
            raise SystemExit(
                f"Redis at 127.0.0.1:6379 is not reachable ({exc}); try `make services`."
            ) from None
        self._redis_flushed = True
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        script = SEED_SCRIPT.format(rules=json.dumps(RULES), environment=ENVIRONMENT, flag=FLAG_KEY)
        output = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        ).stdout
        seeded = json.loads(output.strip().splitlines()[-1])
        self.tokens = {"resolve": seeded["resolve"], "write": seeded["write"]}
        self.revision = int(seeded["revision"])
        self.port = self.port or free_port()
        argv = [
            sys.executable, "-m", "gunicorn", "controlplane.wsgi:application",
            "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers), "--threads", str(self.threads),
            "--log-level", "warning", "--timeout", "120", "--backlog", "2048",
        ]  # fmt: skip
        if self.access_log:
            argv += ["--access-logfile", self.access_log]
        self.server = subprocess.Popen(argv, cwd=ROOT, env=self.env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(f"gunicorn exited with status {self.server.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/bench/trivial")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not come up within 180 s")

    def request(
        self, method: str, path: str, body: object = None, *, scope: str = "resolve"
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {self.tokens[scope]}", "Content-Type": "application/json"}
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
        finally:
            conn.close()

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None
        if self._redis_flushed:
            try:
                redis.Redis.from_url(self.redis_url).flushdb()
            except redis.RedisError as exc:
                print(f"warning: could not flush {self.redis_url}: {exc}", file=sys.stderr)
        if self._created:
            _drop_database(self.database)
            self._created = False
        if self.var_dir:
            shutil.rmtree(self.var_dir, ignore_errors=True)
