"""Analysis tick: one tick of 100 running rollouts over rollups of 1 and of 10 million calls.

Creates a PostgreSQL database of its own (local server 127.0.0.1:5432 as root; dropped at the
end unless --keep) and migrates it. Through the services: environments `production` and
`staging`, --rollouts flags with a baseline and a candidate version, a live scoring policy and
a running rollout each (default stages and the surface's default policy, so eight guardrails:
live pass rate, API errors, max_tokens and refusal stops, TTFT and total p95, cost per call),
half of them promoted to the 10 % stage; plus --quiet-flags flags without a rollout. Stage ages
are spread from 5 minutes to 4 hours (1 % stage) and 10 hours (10 % stage); every stage gets a
minimum duration longer than the data, so that the A/A data hold every rollout where it is and
each timed tick decides all of them.

Then, per volume (--calls, 1 and 10 million by default): the rollup tables are emptied and
filled, as the ingest would have left them for that many calls over --hours:
per minute, environment (90 % production), flag (lognormal shares), version and arm (the
candidate and control bands of the current stage, the 1 % band before a 10 % stage began, the
rest on the baseline; none before the rollout began), model (85/15) — a Poisson number of
calls, counters drawn per row (errors 1 %, max_tokens 2 %, refusals 0.3 %, token sums), the
cost sum and sum of squares of lognormal per-call costs, and latency and TTFT histograms of
lognormal per-call values (rows only for non-empty buckets, so histogram rows grow with the
calls, as they do in production); live-score rollups of a 10 % judged sample per minute and
arm. The fill is fast without changing those rows: histogram rows go in by binary COPY built
from numpy arrays, and the tables' secondary indexes, unique constraints and foreign-key checks
are put back once after the COPY instead of maintained per row. Then VACUUM ANALYZE.

A tick reads each rollout's checkpoint of its settled minutes plus the rollup rows after it
(rollouts/aggregate_checkpoints.py), and the checkpoint is built by the ticks themselves. So
two kinds of tick are timed, --runs times each, with the real service
(`rollouts.services.ticks.tick_due_rollouts`, which claims, reads the aggregates, decides,
writes the Decision and acts, committing as in production), every rollout made due first, each
tick reading only the minutes before its `now` (the later ones have not arrived yet):
- cold: the checkpoints deleted before each tick, the first tick of every stage (after a
  deploy, or a checkpoint made for another window): it sums every row since each stage began;
- steady: a minute after the previous tick, as production runs it (a tick a minute): the
  checkpoint the previous tick left, plus the rows of the unsettled minutes.
The targets are judged on the steady tick; the cold one is printed beside it so nobody takes
one for the other.

--explain prints, after each volume's steady ticks, PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS)` of
the last steady tick's statements that read the rollups (rollouts/rollup_sums.py), run again.

The heap is frozen as a Celery pool process freezes it before its first task
(controlplane/boot.py), and before timing the SRM test's scipy import is done (a worker ticks
for its lifetime). Prints
rows per table, each run's tick time, the median and spread, the CPU time of this process and
of its PostgreSQL backend per tick (on a shared machine the wall time follows what else runs,
the CPU time much less), the statements per tick, the ratios of the medians (10 M / 1 M) of
both kinds of tick, the core count and the load average before and after.
Targets (issue 15, acceptance): one tick <= 1 s at 10 M calls, and <= 1.2x the time at 1 M.

    .venv/bin/python bench/bench_rollout_tick.py [--rollouts N] [--calls 1000000,10000000]
        [--hours H] [--runs N] [--seed N] [--database NAME] [--keep] [--explain]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psycopg

PG_SERVER = "postgresql://root@127.0.0.1:5432"
TARGET_SECONDS = 1.0
TARGET_RATIO = 1.2
MODELS = ("claude-sonnet-5-5", "claude-haiku-5")
MODEL_SHARES = (0.85, 0.15)
PRODUCTION_SHARE = 0.9
SCORER = "helpful"
JUDGED_SHARE = 0.1
# Per call: lognormal latency and TTFT (median ms, sigma), cost (mean micro-USD, sigma).
LATENCY = (2500.0, 0.5)
TTFT = (400.0, 0.5)
COST = (4000.0, 0.6)


def recreate_database(name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--quiet-flags", type=int, default=20, help="flags without a rollout")
    parser.add_argument("--calls", default="1000000,10000000", help="comma-separated volumes")
    parser.add_argument("--hours", type=float, default=24.0, help="the span the calls cover")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--explain", action="store_true", help="print the plans of the last steady tick's rollup reads"
    )
    parser.add_argument(
        "--database",
        help="the PostgreSQL database to create (replacing one of that name) and drop; "
        "default flagstaff_bench_tick_<pid>",
    )
    args = parser.parse_args()
    database = args.database or f"flagstaff_bench_tick_{os.getpid()}"
    recreate_database(database)
    os.environ.update(
        {
            "DATABASE_URL": f"{PG_SERVER}/{database}",
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key"),
            "LOG_LEVEL": "WARNING",
        }
    )
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    try:
        return run(args, database)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            recreate_database(database, drop_only=True)


@dataclass(frozen=True)
class Plan:
    """What the data generator needs of each rollout: ids, versions, and when its bands began."""

    flag_id: int
    environment_id: int
    baseline: int
    candidate: int
    rollout_start_minute: int  # minutes from the start of the data
    stage_start_minute: int
    weight: float  # the current stage's band, as a share of traffic


def build_world(args: argparse.Namespace, end: datetime) -> tuple[list[Plan], list[int], dict[str, int]]:
    from controlplane.audit import Actor
    from evals.services import live_scoring
    from flags import services
    from rollouts.models import Rollout, Stage
    from rollouts.services import checklist, lifecycle

    actor = Actor.system("bench")
    rng = np.random.default_rng(args.seed)
    production = services.create_environment(
        key="production", name="Production", actor=actor, protected=False
    )
    staging = services.create_environment(key="staging", name="Staging", actor=actor, protected=False)
    # The bench measures the tick, not the deploy checklist: production requires no item here.
    checklist.set_checklist_policy(environment=production, required=[], actor=actor)
    minutes = int(args.hours * 60)
    plans: list[Plan] = []
    quiet: list[int] = []
    for index in range(args.rollouts + args.quiet_flags):
        flag = services.create_flag(key=f"flag-{index:03d}", name="", surface="chat", actor=actor)
        for number in (1, 2):
            content = {"model": MODELS[0], "max_tokens": 512 * number, "system": f"You are v{number}."}
            services.create_version(flag=flag, content=content, actor=actor)
        for environment in (production, staging):
            services.publish_version(flag=flag, environment=environment, number=1, actor=actor)
        if index >= args.rollouts:
            quiet.append(flag.pk)
            continue
        live_scoring.set_live_scoring_policy(
            flag=flag,
            scorer_specs=[{"name": "end_turn", "key": SCORER}],
            sample_rates={},
            daily_judge_budget_micro_usd=0,
            actor=actor,
        )
        rollout = lifecycle.create_rollout(
            flag=flag, environment=production, candidate=2, actor=actor, reason="bench"
        )
        rollout = lifecycle.start_rollout(rollout=rollout, actor=actor, reason="bench")
        ten_percent = index % 2 == 1
        if ten_percent:
            rollout = lifecycle.promote_rollout(rollout=rollout, actor=actor, reason="bench", stage=0)
        # Stage ages: up to 4 h at 1 % (its maximum), up to 10 h at 10 %; the 1 % stage of a
        # rollout now at 10 % lasted 30 min to 4 h.
        # Every stage began before the first timed tick (--runs + 1 minutes before the end).
        stage_age = int(rng.integers(args.runs + 5, 600 if ten_percent else 240))
        first_stage = int(rng.integers(30, 240)) if ten_percent else 0
        stage_start = minutes - stage_age
        rollout_start = max(0, stage_start - first_stage)
        # No stage may end during the benchmark: the data are A/A, so every tick holds.
        Stage.objects.filter(rollout=rollout).update(
            min_duration_seconds=10 * 24 * 3600, max_duration_seconds=20 * 24 * 3600
        )
        Stage.objects.filter(rollout=rollout, index=rollout.stage_index).update(
            started_at=end - timedelta(minutes=stage_age)
        )
        Rollout.objects.filter(pk=rollout.pk).update(next_tick_at=end)
        plans.append(
            Plan(
                flag_id=flag.pk,
                environment_id=production.pk,
                baseline=1,
                candidate=2,
                rollout_start_minute=rollout_start,
                stage_start_minute=stage_start,
                weight=0.10 if ten_percent else 0.01,
            )
        )
    return plans, quiet, {"production": production.pk, "staging": staging.pk}


@dataclass
class Cells:
    """One entry per (key, minute) that received calls."""

    minute: np.ndarray
    environment: np.ndarray
    flag: np.ndarray
    version: np.ndarray
    arm: np.ndarray  # index into ARMS
    model: np.ndarray  # index into MODELS
    calls: np.ndarray


ARMS = ("", "baseline", "control", "candidate")


def flag_shares(seed: int, flags: int) -> np.ndarray:
    """Each flag's share of the calls (lognormal), the same at every volume: the volumes' data
    differ in the number of calls only, not in which flags (and so which rollouts) get them."""
    shares = np.random.default_rng([seed, flags]).lognormal(0.0, 1.0, flags)
    return shares / shares.sum()


def draw_cells(
    rng: np.random.Generator,
    plans: list[Plan],
    quiet: list[int],
    environments: dict[str, int],
    *,
    shares: np.ndarray,
    total_calls: int,
    minutes: int,
) -> Cells:
    """Poisson calls per (minute, environment, flag, version, arm, model), flags (the rollouts'
    first) by `shares`."""
    flags = [plan.flag_id for plan in plans] + quiet
    per_minute = total_calls * shares / minutes
    minute = np.arange(minutes)
    parts: list[tuple[np.ndarray, int, int, int, int, int, np.ndarray]] = []

    def add(rate: np.ndarray, environment: int, flag: int, version: int, arm: int) -> None:
        for model, model_share in enumerate(MODEL_SHARES):
            parts.append((minute, environment, flag, version, arm, model, rate * model_share))

    plan_of = {plan.flag_id: plan for plan in plans}
    for flag, rate in zip(flags, per_minute, strict=True):
        add(np.full(minutes, rate * (1 - PRODUCTION_SHARE)), environments["staging"], flag, 1, 0)
        production_rate = rate * PRODUCTION_SHARE
        plan = plan_of.get(flag)
        if plan is None:
            add(np.full(minutes, production_rate), environments["production"], flag, 1, 0)
            continue
        # The band each arm had at each minute: none before the rollout, 1 % until the current
        # stage began (a 10 % stage's rollout passed through 1 %), the stage's weight since.
        band = np.where(
            minute < plan.rollout_start_minute,
            0.0,
            np.where(minute < plan.stage_start_minute, 0.01, plan.weight),
        )
        baseline_arm = np.where(band > 0, ARMS.index("baseline"), ARMS.index(""))
        for arm_value in np.unique(baseline_arm):
            mask = baseline_arm == arm_value
            add(
                np.where(mask, production_rate * (1 - 2 * band), 0.0),
                plan.environment_id,
                flag,
                1,
                int(arm_value),
            )
        add(production_rate * band, plan.environment_id, flag, plan.baseline, ARMS.index("control"))
        add(production_rate * band, plan.environment_id, flag, plan.candidate, ARMS.index("candidate"))

    columns: dict[str, list[np.ndarray]] = {name: [] for name in Cells.__dataclass_fields__}
    for minutes_of, environment, flag, version, arm, model, rate in parts:
        calls = rng.poisson(rate)
        keep = calls > 0
        count = int(keep.sum())
        columns["minute"].append(minutes_of[keep])
        columns["environment"].append(np.full(count, environment))
        columns["flag"].append(np.full(count, flag))
        columns["version"].append(np.full(count, version))
        columns["arm"].append(np.full(count, arm))
        columns["model"].append(np.full(count, model))
        columns["calls"].append(calls[keep])
    merged = {name: np.concatenate(values) for name, values in columns.items()}
    order = np.lexsort(
        (
            merged["model"],
            merged["arm"],
            merged["version"],
            merged["flag"],
            merged["environment"],
            merged["minute"],
        )
    )
    return Cells(**{name: values[order] for name, values in merged.items()})


FILLED_TABLES = ("telemetry_rollup", "telemetry_rolluphistogram", "evals_livescorerollup")
# PostgreSQL's binary COPY: the signature, flags and header extension, then the rows, then -1.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def copy_histogram_binary(
    cursor: psycopg.Cursor, metric: str, rollup_ids: np.ndarray, buckets: np.ndarray, counts: np.ndarray
) -> None:
    """COPY one metric's histogram rows in PostgreSQL's binary format, built as one numpy
    record array (each field: its length, then its big-endian value), so that tens of millions
    of rows take seconds instead of a Python string each."""
    label = metric.encode()
    rows = np.empty(
        len(rollup_ids),
        dtype=[
            ("fields", ">i2"),
            ("rollup_size", ">i4"),
            ("rollup", ">i8"),
            ("metric_size", ">i4"),
            ("metric", f"S{len(label)}"),
            ("bucket_size", ">i4"),
            ("bucket", ">i2"),
            ("n_size", ">i4"),
            ("n", ">i8"),
        ],
    )
    rows["fields"] = 4
    rows["rollup_size"], rows["rollup"] = 8, rollup_ids
    rows["metric_size"], rows["metric"] = len(label), label
    rows["bucket_size"], rows["bucket"] = 2, buckets
    rows["n_size"], rows["n"] = 8, counts
    with cursor.copy(
        "COPY telemetry_rolluphistogram (rollup_id, metric, bucket, n) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(COPY_HEADER)
        for start in range(0, len(rows), 1_000_000):
            copy.write(rows[start : start + 1_000_000].tobytes())
        copy.write(COPY_TRAILER)


@contextmanager
def indexes_built_after(cursor: psycopg.Cursor, tables: tuple[str, ...]) -> Iterator[None]:
    """Fill the tables without their secondary indexes, unique constraints and foreign-key
    checks, then build the indexes once: the rows are those the ingest leaves, only written
    faster (maintaining a unique index and checking a foreign key per row was most of the fill)."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'u' AND conrelid::regclass::text = ANY(%s)",
        [list(tables)],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))",
        [list(tables)],
    )
    indexes = cursor.fetchall()
    for table, name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    cursor.execute("SET session_replication_role = replica")  # no foreign-key triggers
    try:
        yield
    finally:
        cursor.execute("SET session_replication_role = DEFAULT")
        for table, name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            cursor.execute(definition)


def _copy(cursor: psycopg.Cursor, table: str, columns: tuple[str, ...], lines: list[str]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for start in range(0, len(lines), 200_000):
            copy.write("".join(lines[start : start + 200_000]))


def histogram_rows(
    rng: np.random.Generator, calls: np.ndarray, ids: np.ndarray, median_ms: float, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rollup id, bucket, n) of lognormal per-call values, bucketed as telemetry/histograms.py does."""
    from telemetry.histograms import SUBBUCKETS

    ids_out, buckets_out, counts_out = [], [], []
    # Chunks of about two million calls keep the memory small.
    cumulative = np.cumsum(calls)
    for rows in np.split(
        np.arange(len(calls)), np.searchsorted(cumulative, np.arange(2_000_000, cumulative[-1], 2_000_000))
    ):
        owner = np.repeat(rows, calls[rows])
        values = rng.lognormal(np.log(median_ms), sigma, len(owner))
        buckets = np.where(values < 1, 0, 1 + np.floor(SUBBUCKETS * np.log2(np.maximum(values, 1)))).astype(
            np.int64
        )
        unique, counts = np.unique(owner * 4096 + buckets, return_counts=True)
        ids_out.append(ids[unique // 4096])
        buckets_out.append(unique % 4096)
        counts_out.append(counts)
    return np.concatenate(ids_out), np.concatenate(buckets_out), np.concatenate(counts_out)


def fill_rollups(
    rng: np.random.Generator, cells: Cells, start: datetime, plans: list[Plan]
) -> dict[str, int]:
    """Empty the rollup tables and COPY in what ingest and live scoring would have left."""
    from django.db import connection

    calls = cells.calls
    n = len(calls)
    errors = rng.binomial(calls, 0.01)
    answered = calls - errors
    max_tokens = rng.binomial(answered, 0.02)
    refusals = rng.binomial(answered - max_tokens, 0.003)
    end_turn = answered - max_tokens - refusals
    input_tokens = rng.poisson(1200.0 * calls)
    output_tokens = rng.poisson(250.0 * calls)
    cache_read = rng.poisson(3000.0 * calls)
    cache_write = rng.poisson(50.0 * calls)
    # Cost: the sum of `calls` lognormal costs (normal approximation, at least 1 micro-USD a
    # call) and a sum of squares consistent with it: Σx² = (Σx)²/n + s²·χ²(n − 1).
    mean, sigma = COST
    spread = mean * np.sqrt(np.exp(sigma**2) - 1)
    cost = np.maximum(calls, np.rint(rng.normal(mean * calls, spread * np.sqrt(calls)))).astype(np.int64)
    chi = rng.chisquare(np.maximum(calls - 1, 1)) * (calls > 1)
    squares = [
        total * total // count + int(spread**2 * x)
        for total, count, x in zip(cost.tolist(), calls.tolist(), chi.tolist(), strict=True)
    ]
    ids = np.arange(1, n + 1)
    buckets = [(start + timedelta(minutes=int(m))).isoformat() for m in range(int(cells.minute.max()) + 1)]
    rollup_lines = [
        f"{i}\t{buckets[m]}\t{e}\t{f}\t{v}\t{ARMS[a]}\t{MODELS[md]}\t{c}\t{er}\t{et}\t{mt}\t{rf}\t{er}\t"
        f"{it}\t{ot}\t{cw}\t{cr}\t{co}\t{sq}\t0\t0\t0\t0\t0\t0\t0\n"
        for i, m, e, f, v, a, md, c, er, et, mt, rf, it, ot, cw, cr, co, sq in zip(
            ids.tolist(), cells.minute.tolist(), cells.environment.tolist(), cells.flag.tolist(),
            cells.version.tolist(), cells.arm.tolist(), cells.model.tolist(), calls.tolist(),
            errors.tolist(), end_turn.tolist(), max_tokens.tolist(), refusals.tolist(),
            input_tokens.tolist(), output_tokens.tolist(), cache_write.tolist(), cache_read.tolist(),
            cost.tolist(), squares, strict=True,
        )
    ]  # fmt: skip
    latency = histogram_rows(rng, calls, ids, *LATENCY)
    ttft = histogram_rows(rng, calls, ids, *TTFT)
    histogram_rows_written = len(latency[0]) + len(ttft[0])
    # Live scores: a judged share of each (minute, flag, version, arm)'s calls, models merged.
    judged_keys = np.stack([cells.minute, cells.environment, cells.flag, cells.version, cells.arm])
    scored = cells.arm != ARMS.index("")
    unique, inverse = np.unique(judged_keys[:, scored], axis=1, return_inverse=True)
    judged = rng.binomial(np.bincount(inverse.ravel(), weights=calls[scored]).astype(np.int64), JUDGED_SHARE)
    score_errors = rng.binomial(judged, 0.02)
    passed = rng.binomial(judged - score_errors, 0.85)
    live_lines = [
        f"{buckets[m]}\t{e}\t{f}\t{v}\t{ARMS[a]}\t{SCORER}\t{j}\t{p}\t{float(p)}\t{er}\n"
        for (m, e, f, v, a), j, p, er in zip(
            unique.T.tolist(), judged.tolist(), passed.tolist(), score_errors.tolist(), strict=True
        )
        if j > 0
    ]
    with connection.cursor() as django_cursor:
        django_cursor.execute(
            "TRUNCATE telemetry_rollup, telemetry_rolluphistogram, telemetry_rollupcount, "
            "evals_livescorerollup, rollouts_aggregatecheckpoint RESTART IDENTITY"
        )
    raw = connection.connection
    assert raw is not None
    with raw.cursor() as cursor, indexes_built_after(cursor, FILLED_TABLES):
        _copy(
            cursor,
            "telemetry_rollup",
            (
                "id", "bucket", "environment_id", "flag_id", "version", "arm", "model", "calls",
                "errors", "stop_end_turn", "stop_max_tokens", "stop_refusal", "stop_none",
                "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_read_tokens",
                "cost_micro_usd", "cost_sq_micro_usd2", "stop_stop_sequence", "stop_tool_use",
                "stop_pause_turn", "stop_model_context_window_exceeded", "stop_other",
                "cache_write_1h_tokens", "cost_unknown_calls",
            ),
            rollup_lines,
        )  # fmt: skip
        for metric, (rollup_ids, bucket_ids, counts) in (("latency", latency), ("ttft", ttft)):
            copy_histogram_binary(cursor, metric, rollup_ids, bucket_ids, counts)
        _copy(
            cursor,
            "evals_livescorerollup",
            (
                "bucket",
                "environment_id",
                "flag_id",
                "version",
                "arm",
                "scorer",
                "n",
                "passed",
                "score_sum",
                "errors",
            ),
            live_lines,
        )
        cursor.execute("SELECT setval(pg_get_serial_sequence('telemetry_rollup', 'id'), %s)", [n])
    with raw.cursor() as cursor:
        for table in FILLED_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "calls": int(calls.sum()),
        "rollups": n,
        "histograms": histogram_rows_written,
        "live_score_rollups": len(live_lines),
    }


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a PostgreSQL backend so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    seconds: float
    cpu_here: float  # this process: Django, the analysis
    cpu_database: float  # its PostgreSQL backend
    statements: int


def time_ticks(
    times: list[datetime], expected: int, *, cold: bool, reads: list[tuple[str, Any]] | None = None
) -> tuple[list[Run], Counter[str]]:
    """One timed tick of every rollout at each of `times`; `cold`: with the checkpoints deleted
    before each (a first tick of every stage), else ticking on from the previous tick's. The
    last tick's rollup reads (statement, parameters) are appended to `reads` when given."""
    from django.db import connection

    from rollouts import stats
    from rollouts.models import AggregateCheckpoint, Decision, Rollout, RolloutState
    from rollouts.services.ticks import tick_due_rollouts

    # A worker ticks for its lifetime: its imports (scipy's, on the first SRM test) are done.
    stats.srm_p_value([1, 1], [1.0, 1.0])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    statements = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1
        if reads is not None and sql.startswith("WITH w "):
            reads.append((sql, params))
        return execute(sql, params, many, context)

    results: list[Run] = []
    actions: Counter[str] = Counter()
    first = (Decision.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    for run, now in enumerate(times):
        Rollout.objects.filter(state=RolloutState.RUNNING).update(next_tick_at=now)
        if cold:
            AggregateCheckpoint.objects.all().delete()
        if reads is not None:
            reads.clear()
        statements, cpu, database = 0, time.process_time(), backend_cpu_seconds(backend)
        with connection.execute_wrapper(count):
            started = time.perf_counter()
            decided = tick_due_rollouts(now=now)
            elapsed = time.perf_counter() - started
        results.append(
            Run(elapsed, time.process_time() - cpu, backend_cpu_seconds(backend) - database, statements)
        )
        if decided != expected:
            print(f"  warning: run {run + 1} decided {decided} rollouts, not {expected}")
    actions.update(Decision.objects.filter(id__gte=first).values_list("reason", flat=True))
    return results, actions


def explain(reads: list[tuple[str, Any]]) -> None:
    """Print PostgreSQL's plan of each rollup read, run again (they only read), without parallel
    workers as the tick runs them (rollouts/rollup_sums.py)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        for sql, params in reads:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            print("\n".join(f"    {line}" for (line,) in cursor.fetchall()))


def report(label: str, results: list[Run], load_before: str) -> tuple[float, float]:
    """Print one kind of tick's figures; its median wall and CPU seconds."""
    seconds = [result.seconds for result in results]
    median = statistics.median(seconds)
    cpu = statistics.median(result.cpu_here + result.cpu_database for result in results)
    print(
        f"  {label}: "
        + ", ".join(f"{value:.3f}" for value in seconds)
        + f" s; median {median:.3f} s, min {min(seconds):.3f}, max {max(seconds):.3f}"
        f"  (load average before {load_before}, after {load_average()})"
    )
    print(
        "    CPU per tick (this process + its PostgreSQL backend): "
        + ", ".join(f"{r.cpu_here:.2f}+{r.cpu_database:.2f}" for r in results)
        + f" s; median {cpu:.2f} s; {results[-1].statements} statements"
    )
    return median, cpu


def run(args: argparse.Namespace, database: str) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    from controlplane.boot import prepare_worker_process

    call_command("migrate", verbosity=0, interactive=False)
    # What a Celery pool process does before its first task (controlplane/celery.py): freeze the
    # heap loaded so far, so the collector's full collections do not walk it. Without this a
    # full collection now and then added about 0.17 s of this process's CPU time to a tick,
    # whatever the volume, which the worker never pays.
    prepare_worker_process()

    volumes = [int(value) for value in args.calls.split(",")]
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = int(args.hours * 60)
    start = end - timedelta(minutes=minutes)
    began = time.perf_counter()
    plans, quiet, environments = build_world(args, end)
    print(
        f"cores: {os.cpu_count()}  database: {database}  rollouts: {len(plans)} running "
        f"(+{len(quiet)} flags without one)  set-up {time.perf_counter() - began:.0f} s"
    )
    figures: dict[tuple[str, int], tuple[float, float]] = {}
    shares = flag_shares(args.seed, len(plans) + len(quiet))
    for volume in volumes:
        rng = np.random.default_rng(args.seed + volume)
        began = time.perf_counter()
        cells = draw_cells(
            rng, plans, quiet, environments, shares=shares, total_calls=volume, minutes=minutes
        )
        rows = fill_rollups(rng, cells, start, plans)
        print(
            f"{volume:,} calls over {args.hours:g} h: {rows['rollups']:,} rollups, "
            f"{rows['histograms']:,} histogram rows, {rows['live_score_rollups']:,} live-score rollups "
            f"(written in {time.perf_counter() - began:.0f} s)"
        )
        # The ticks read rows before their `now` only: the minutes after it have not arrived yet.
        first_tick = end - timedelta(minutes=args.runs + 1)
        load_before = load_average()
        results, actions = time_ticks(
            [first_tick + timedelta(seconds=run) for run in range(args.runs)], len(plans), cold=True
        )
        figures[("cold", volume)] = report(
            f"cold tick of {len(plans)} rollouts (no checkpoint)", results, load_before
        )
        load_before = load_average()
        # The last cold tick left the checkpoints; each steady tick comes a minute after the last.
        reads: list[tuple[str, Any]] = []
        steady, steady_actions = time_ticks(
            [first_tick + timedelta(minutes=run + 1) for run in range(args.runs)],
            len(plans),
            cold=False,
            reads=reads if args.explain else None,
        )
        figures[("steady", volume)] = report(
            f"steady tick of {len(plans)} rollouts (a minute after the previous tick)", steady, load_before
        )
        if args.explain:
            print("  the last steady tick's rollup reads:")
            explain(reads)
        print(f"  decisions: {dict(actions + steady_actions)}")
    largest, smallest = max(volumes), min(volumes)
    if largest != smallest:
        for kind in ("cold", "steady"):
            (wall_large, cpu_large), (wall_small, cpu_small) = (
                figures[(kind, largest)],
                figures[(kind, smallest)],
            )
            print(
                f"{kind} tick, ratio {largest:,} / {smallest:,} calls: {wall_large / wall_small:.2f}x wall, "
                f"{cpu_large / cpu_small:.2f}x CPU"
            )
        wall_large, cpu_large = figures[("steady", largest)]
        wall_small, cpu_small = figures[("steady", smallest)]
        ratio = wall_large / wall_small
        print(
            "targets (the steady tick, as production runs it): "
            f"tick <= {TARGET_SECONDS:g} s at {largest:,} calls "
            f"{'met' if wall_large <= TARGET_SECONDS else 'NOT met'}; "
            f"<= {TARGET_RATIO:g}x the time at {smallest:,} {'met' if ratio <= TARGET_RATIO else 'NOT met'} "
            f"(CPU {cpu_large / cpu_small:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
