"""Run the whole control plane in the foreground: web, the stream process, a Celery worker
and embedded beat.

The stream process (uvicorn, controlplane.asgi) listens on `--stream-bind`, by default the port
after `--bind`'s; the web processes name it to clients (FLAGSTAFF_STREAM_URL, unless already
set) in every snapshot answer and OFREP eventStreams URL (docs/serving.md, "The stream process").

Ctrl-C (or SIGTERM) stops every process this command started; if one of them dies, the others
are stopped too, so nothing is left running half-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

STOP_GRACE_SECONDS = 10
# The web server's defaults (bench/bench_ingest.py runs them too): a worker per core of a small
# machine, and threads enough that every kept-alive connection a worker's socket is given has
# one (connections are spread over the workers' sockets by their addresses' hash, not evenly).
WEB_WORKERS = 2
WEB_THREADS = 32
# Open streams never end by themselves: on stop, uvicorn closes them after this long.
STREAM_SHUTDOWN_SECONDS = 3


def stream_command(host: str, port: int) -> list[str]:
    """The stream process: uvicorn with uvloop and httptools, no access log (a line per
    reconnect of thousands of clients), a backlog for a fleet reconnecting at once."""
    return [
        sys.executable, "-m", "uvicorn", "controlplane.asgi:application",
        "--host", host, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--backlog", "4096", "--log-level", "warning",
        "--timeout-graceful-shutdown", str(STREAM_SHUTDOWN_SECONDS),
    ]  # fmt: skip


def default_stream_bind(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    return f"{host}:{int(port) + 1}"


class Command(BaseCommand):
    help = "Start web (gunicorn), streams (uvicorn), a Celery worker and beat; stop them all on Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=WEB_WORKERS)
        parser.add_argument("--web-threads", type=int, default=WEB_THREADS)
        parser.add_argument(
            "--stream-bind", help="host:port of the stream process (default: --bind's port + 1)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        stream_bind = options["stream_bind"] or default_stream_bind(options["bind"])
        stream_host, _, stream_port = stream_bind.rpartition(":")
        public_host = "127.0.0.1" if stream_host in ("0.0.0.0", "") else stream_host  # noqa: S104
        environment = {"FLAGSTAFF_STREAM_URL": f"http://{public_host}:{stream_port}", **os.environ}
        commands = {
            "web": [
                python, "-m", "gunicorn", "controlplane.wsgi:application",
                "--config", str(settings.BASE_DIR / "controlplane" / "gunicorn_conf.py"),
                "--bind", options["bind"], "--workers", str(options["web_workers"]),
                "--threads", str(options["web_threads"]),
                "--access-logfile", "-",
            ],
            "stream": stream_command(stream_host, int(stream_port)),
            "worker": [
                python, "-m", "celery", "-A", "controlplane", "worker", "--beat",
                "--loglevel", "INFO", "--concurrency", "2",
                "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }  # fmt: skip
        # Fixed argv lists built from our own interpreter path; no shell, no user input.
        processes = {name: subprocess.Popen(argv, env=environment) for name, argv in commands.items()}  # noqa: S603
        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.stdout.write(
            f"Flagstaff is running at http://{options['bind']}/, change streams at"
            f" {environment['FLAGSTAFF_STREAM_URL']} (Ctrl-C stops everything)"
        )
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with status {process.returncode}; stopping the rest.")
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)
        self._stop(processes)
        if exit_code:
            raise SystemExit(exit_code)

    def _stop(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.stdout.write("Stopped web, streams, worker and beat.")
