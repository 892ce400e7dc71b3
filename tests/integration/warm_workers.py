"""Celery workers forked from a warm parent, for a test that starts many and kills them.

A worker started as `python -m celery -A controlplane worker` spends seconds of CPU before it
takes a message: the interpreter, Django's set-up, the apps, the tasks and Celery's worker
modules. `WarmWorkers` pays that once: it starts this module as a parent process (run with
`python -m tests.integration.warm_workers`) that imports all of it, opens no connection, and then
forks one child per line it reads on stdin. Each child is a complete worker of its own: it runs
`celery worker` (the same command-line options, through `Celery.worker_main`), opens its own
connections to the database and the broker, and dies alone when it is sent SIGKILL. The parent
reaps its children and answers each line with the child's pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

READY = "ready"


class WarmWorkers:
    """The parent process, started with the workers' environment (`env`); `start` forks a worker."""

    def __init__(self, env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.log = log.open("wb")
        self.parent = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.warm_workers"],
            cwd=cwd,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.pids: list[int] = []
        self._answer(READY)

    def _answer(self, expected: str | None = None) -> str:
        assert self.parent.stdout is not None
        line = self.parent.stdout.readline().strip()
        if not line or (expected is not None and line != expected):
            self.log.flush()
            raise AssertionError(f"the warm worker parent answered {line!r}: see {self.log.name}")
        return line

    def start(self, *, log: Path, argv: list[str]) -> int:
        """Fork a worker running `celery worker` with `argv`, its output to `log`; its pid."""
        assert self.parent.stdin is not None
        self.parent.stdin.write(f"{log}\t{chr(31).join(argv)}\n")
        self.parent.stdin.flush()
        pid = int(self._answer())
        self.pids.append(pid)
        return pid

    def close(self, timeout: float = 15.0) -> None:
        """Stop every worker still alive (SIGTERM, then SIGKILL after `timeout`), then the parent."""
        for pid in self.pids:
            signal_if_alive(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in self.pids:
            if not wait_gone(pid, deadline):
                signal_if_alive(pid, signal.SIGKILL)
                wait_gone(pid, time.monotonic() + timeout)
        if self.parent.stdin is not None:
            self.parent.stdin.close()
        self.parent.wait(timeout=timeout)
        self.log.close()


def alive(pid: int) -> bool:
    """Whether the worker has not yet been reaped by its parent (which reaps on SIGCHLD)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def signal_if_alive(pid: int, sig: int) -> None:
    if alive(pid):
        os.kill(pid, sig)


def wait_gone(pid: int, deadline: float) -> bool:
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _reap(_signum: int, _frame: FrameType | None) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _run_worker(log: str, argv: list[str]) -> None:
    """In the forked child: output to `log`, no stdin, Celery's worker until it exits."""
    from controlplane.celery import app

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    status = 1
    try:
        app.worker_main(["worker", *argv])
        status = 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main() -> None:
    """Import what a worker imports, open nothing, then fork one worker per line on stdin."""
    import celery.apps.worker
    import celery.bin.celery
    import celery.concurrency.solo
    import celery.worker.consumer  # noqa: F401
    import django
    import kombu.transport.redis  # noqa: F401

    django.setup()
    from django.db import connections

    from controlplane.celery import app

    app.loader.import_default_modules()
    opened = [c.alias for c in connections.all(initialized_only=True) if c.connection is not None]
    assert not opened, f"the parent opened database connections {opened}: its children would share them"
    signal.signal(signal.SIGCHLD, _reap)
    print(READY, flush=True)
    for line in sys.stdin:
        log, argv = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:
            _run_worker(log, argv.split(chr(31)))
        print(pid, flush=True)


if __name__ == "__main__":
    main()
