"""Run the whole control plane in the foreground: web, Celery worker and embedded beat.

Ctrl-C (or SIGTERM) stops every process this command started; if one of them dies, the others
are stopped too, so nothing is left running half-way.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

STOP_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Start web (gunicorn), a Celery worker and Celery beat; stop them all on Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=2)
        # Each open change stream (SSE) holds one thread of a gthread worker until it ends.
        parser.add_argument("--web-threads", type=int, default=32)

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        commands = {
            "web": [
                python, "-m", "gunicorn", "controlplane.wsgi:application",
                "--config", str(settings.BASE_DIR / "controlplane" / "gunicorn_conf.py"),
                "--bind", options["bind"], "--workers", str(options["web_workers"]),
                "--threads", str(options["web_threads"]),
                "--access-logfile", "-",
            ],
            "worker": [
                python, "-m", "celery", "-A", "controlplane", "worker", "--beat",
                "--loglevel", "INFO", "--concurrency", "2",
                "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }  # fmt: skip
        # Fixed argv lists built from our own interpreter path; no shell, no user input.
        processes = {name: subprocess.Popen(argv) for name, argv in commands.items()}  # noqa: S603
        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.stdout.write(f"Flagstaff is running at http://{options['bind']}/ (Ctrl-C stops everything)")
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
        self.stdout.write("Stopped web, worker and beat.")
