"""Eval runs: a config version (or a draft) answering every case of an eval set version.

Map:
- `lifecycle`: start, cancel, resume, finish and the sweep of runs whose worker died; every
  state change is a conditional UPDATE, audited when a person asked for it.
- `storing`: the per-case claim, the reuse of stored answers by (content hash, case hash), and
  storing an answer with its cost and scores; the database is the source of truth.
- `messages`: the Messages API path: sender threads (at most the run's concurrency, or its part's)
  call the API, the task's own thread claims ahead and stores.
- `batches`: the Message Batches API path: create once, poll, read the results.

`execute_run` (the task's one call) dispatches on the run's mode. A Messages run past
FLAGSTAFF_EVAL_CALLS_PER_WORKER calls in flight is split into parts (`lifecycle.part_concurrencies`):
one task per part, each in its own worker process, claiming disjoint cases.

A worker killed with SIGKILL pays twice only for what it had not stored: the calls in flight
(at most the run's concurrency; the API may finish and bill them, and the case is claimed again
once its claim is stale) and the answers that arrived but wait to be stored with others (at most
`messages.STORE_WINDOW_SECONDS` after the first, or `messages.STORE_BATCH` answers). A stored
answer is never asked again.
"""

from evals.services.runs.lifecycle import (
    MAX_CONCURRENCY,
    RunNotRenderable,
    RunStateConflict,
    cancel_run,
    execute_run,
    resume_run,
    start_run,
    sweep_runs,
)

__all__ = [
    "MAX_CONCURRENCY",
    "RunNotRenderable",
    "RunStateConflict",
    "cancel_run",
    "execute_run",
    "resume_run",
    "start_run",
    "sweep_runs",
]
