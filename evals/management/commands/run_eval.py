"""Run a config version against an eval set from the command line, with a progress bar."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.errors import DomainError
from controlplane.models import Source
from evals.lookups import find_eval_set_version, get_run
from evals.models import EvalRun, RunMode
from evals.run_progress import Progress, run_progress
from evals.services import runs
from flags.lookups import get_flag, get_version

BAR_WIDTH = 30
REFRESH_SECONDS = 0.5


def progress_line(progress: Progress, state: str) -> str:
    filled = BAR_WIDTH * progress.percent // 100
    eta = f" ETA {progress.eta_seconds}s" if progress.eta_seconds is not None else ""
    return (
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {progress.done}/{progress.total} "
        f"{progress.percent}%{eta} cost ${progress.cost_micro_usd / 1_000_000:.6f} ({state})"
    )


class Command(BaseCommand):
    help = "Run a flag's config version against an eval set version here, showing progress."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # `--version` is the config version here, as the issue names it, not Django's own.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flag", required=True, help="Flag key")
        parser.add_argument("--version", required=True, type=int, help="Config version number")
        parser.add_argument("--eval-set", required=True, help="Eval set key")
        parser.add_argument("--eval-set-version", type=int, help="Eval set version (latest when absent)")
        parser.add_argument(
            "--batch", action="store_true", help="Use the Message Batches API (50 %% cheaper)"
        )
        parser.add_argument("--concurrency", type=int, help="Calls in flight (Messages API)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            flag = get_flag(options["flag"])
            run = runs.start_run(
                flag=flag,
                eval_set_version=find_eval_set_version(options["eval_set"], options["eval_set_version"]),
                config_version=get_version(flag, options["version"]),
                mode=RunMode.BATCH if options["batch"] else RunMode.MESSAGES,
                concurrency=options["concurrency"],
                actor=Actor.system("manage.py run_eval").with_source(Source.CLI),
            )
        except DomainError as error:
            raise CommandError(f"{error.code}: {error.detail}") from error
        self.stdout.write(f"eval run {run.pk}: {run.cases_total} cases, {run.mode}")
        done = threading.Event()
        bar = threading.Thread(target=self._show_progress, args=(run.pk, done), daemon=True)
        bar.start()
        try:
            self._execute(run)
        finally:
            done.set()
            bar.join()
        run = get_run(run.pk)
        self.stdout.write(progress_line(run_progress(run, now=timezone.now()), run.state))
        if run.reason:
            self.stdout.write(run.reason)
        if run.summary:
            rate = run.summary.get("pass_rate")
            interval = run.summary.get("pass_rate_interval") or [None, None]
            self.stdout.write(
                f"pass rate {rate if rate is None else f'{rate:.1%}'} "
                f"(95 % interval {interval[0]} to {interval[1]}), {run.cases_reused} reused"
            )
        if run.state != "succeeded":
            raise CommandError(f"the run ended {run.state}")

    def _execute(self, run: EvalRun) -> None:
        """Work the run in this process (a worker nudged by the start may help: claims keep it safe)."""
        while True:
            outcome = runs.execute_run(run_id=run.pk)
            if outcome == "polling":
                time.sleep(settings.FLAGSTAFF_EVAL_BATCH_POLL_SECONDS)
            elif outcome not in ("continued", "created", "waiting"):
                return
            elif outcome == "waiting":
                time.sleep(REFRESH_SECONDS)

    def _show_progress(self, run_id: int, done: threading.Event) -> None:
        try:
            while not done.wait(REFRESH_SECONDS):
                # This thread's own connection sees only committed rows (nothing inside a test's
                # transaction): the final line, written by the main thread, always comes.
                run = EvalRun.objects.filter(pk=run_id).first()
                if run is None:
                    continue
                self.stdout.write(
                    "\r" + progress_line(run_progress(run, now=timezone.now()), run.state), ending=""
                )
                self.stdout.flush()
            self.stdout.write("")
        finally:
            connection.close()
