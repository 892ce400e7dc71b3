"""A run's progress as pages and the API show it: cases done of total, ETA, cost so far.

Read-only; the ETA extrapolates the pace of the cases answered in this run (reused cases cost no
time and would make the estimate too hopeful) to the cases left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from evals.models import EvalRun, RunState


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    reused: int
    percent: int
    eta_seconds: int | None
    cost_micro_usd: int
    finished: bool


def eta_seconds(
    *, started_at: datetime | None, now: datetime, answered: int, left: int, running: bool
) -> int | None:
    """Seconds until the last case, at this run's pace so far; None before there is a pace."""
    if not running or started_at is None or answered <= 0:
        return None
    if left <= 0:
        return 0
    elapsed = max(0.0, (now - started_at).total_seconds())
    return round(elapsed / answered * left)


def run_progress(run: EvalRun, *, now: datetime) -> Progress:
    total = run.cases_total
    left = total - run.cases_done
    return Progress(
        done=run.cases_done,
        total=total,
        reused=run.cases_reused,
        percent=100 if total == 0 else (100 * run.cases_done) // total,
        eta_seconds=eta_seconds(
            started_at=run.started_at,
            now=now,
            answered=run.cases_done - run.cases_reused,
            left=left,
            running=run.state == RunState.RUNNING,
        ),
        cost_micro_usd=run.cost_micro_usd,
        finished=run.is_finished,
    )
