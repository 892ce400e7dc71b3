"""Live scoring throughput: 100,000 sampled calls scored by deterministic scorers.

Creates a PostgreSQL database of its own (on the local server 127.0.0.1:5432 as root; dropped
at the end unless --keep), migrates it, ingests the calls with their samples through telemetry's
ingest, and gives the flag a live scoring policy of two deterministic, reference-free scorers
(contains and end_turn). Then, three times, it scores every sample with the production code
path (evals.services.live_scoring.score_new_samples: claim, score, store scores, rollups and
claims), one process, batches of --batch, and clears the scores between runs.

Prints samples/s per run, their spread (min, median, max), the core count and the load average,
and samples per CPU-second of the scoring process: on a shared machine the rate follows what
else runs, the CPU cost much less so.
Target (issue 14, acceptance): >= 2,000 samples/s.

    .venv/bin/python bench/bench_live_scoring.py [--samples N] [--batch N] [--runs N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

PG_SERVER = "postgresql://root@127.0.0.1:5432"
TARGET = 2_000


def recreate_database(name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    database = f"flagstaff_bench_live_{os.getpid()}"
    recreate_database(database)
    os.environ.update(
        {
            "DATABASE_URL": f"{PG_SERVER}/{database}",
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key"),
        }
    )
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            recreate_database(database, drop_only=True)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from controlplane.audit import Actor
    from evals.models import LiveScore, LiveScoreClaim, LiveScoreRollup
    from evals.services import live_scoring
    from flags import services
    from flagstaff.flag_state import FlagState
    from telemetry.services.ingest import ingest_calls

    actor = Actor.system("bench")
    environment = services.create_environment(key="production", name="Production", actor=actor)
    flag = services.create_flag(key="support-chat", name="", surface="chat", actor=actor)
    version = services.create_version(
        flag=flag,
        content={"model": "claude-sonnet-5-5", "max_tokens": 1024, "cache_control": {"type": "ephemeral"}},
        message="",
        actor=actor,
    ).version
    live_scoring.set_live_scoring_policy(
        flag=flag,
        scorer_specs=[
            {"name": "contains", "key": "mentions-refund", "params": {"text": "refund"}},
            {"name": "end_turn", "key": "finished"},
        ],
        sample_rates={},
        daily_judge_budget_micro_usd=0,
        actor=actor,
    )
    now = datetime.now(UTC)
    token = FlagState(
        environment="production", flag=flag.key, version=version.number, arm="candidate",
        split_id=None, revision=environment.revision,
    ).encode()  # fmt: skip
    started = time.perf_counter()
    for start in range(0, args.samples, 1000):
        records = [
            {
                "request_id": f"req_{i:09d}",
                "timestamp": now.isoformat(),
                "model": "claude-sonnet-5-5",
                "stop_reason": "end_turn" if i % 10 else "max_tokens",
                "usage": {"input_tokens": 900, "output_tokens": 180},
                "latency_ms": 800,
                "flag_state": token,
                "sample": {
                    "input": [{"role": "user", "content": f"Where is my order {i}?"}],
                    "output": [
                        {"type": "text", "text": "A refund is on its way." if i % 3 else "It ships today."}
                    ],
                },
            }
            for i in range(start, min(start + 1000, args.samples))
        ]
        ingest_calls(records=records, received_at=now)
    print(f"ingested {args.samples:,} sampled calls in {time.perf_counter() - started:.1f} s")

    rates = []
    for run_number in range(1, args.runs + 1):
        LiveScore.objects.all().delete()
        LiveScoreClaim.objects.all().delete()
        LiveScoreRollup.objects.all().delete()
        scored = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        while True:
            report = live_scoring.score_new_samples(limit=args.batch)
            if report.claimed == 0:
                break
            scored += report.scored
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert scored == args.samples, (scored, args.samples)
        rates.append(scored / elapsed)
        print(
            f"run {run_number}: {scored:,} samples in {elapsed:.2f} s = {rates[-1]:,.0f} samples/s "
            f"({scored / cpu:,.0f} samples per CPU-second of this process; PostgreSQL's time not counted); "
            f"load average over the last minute {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        )
    print(
        f"samples/s: min {min(rates):,.0f}, median {statistics.median(rates):,.0f}, max {max(rates):,.0f} "
        f"(spread {100 * (max(rates) - min(rates)) / statistics.median(rates):.0f} % of the median)"
    )
    print(f"cores: {os.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    met = min(rates) >= TARGET
    print(f"target >= {TARGET:,} samples/s on every run: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
