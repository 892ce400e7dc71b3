"""Eval run throughput through the Messages API: the run engine against the fake Anthropic server.

A fake Anthropic server (demo/fake_anthropic, real HTTP on loopback) runs in a process of its own with
a fixed latency per request; a throwaway SQLite database is migrated; an eval set of N cases is
run by the real engine (`evals.services.runs.execute_run`: claims, streamed calls, scoring,
storing, the summary) at concurrency C. A run past FLAGSTAFF_EVAL_CALLS_PER_WORKER calls in
flight is worked by several tasks at once (its parts), each in a worker process of its own: the
benchmark forks one warm process per part, as a worker pool holds them, starts them together and
gives each the call its task would make. The ideal time is N x latency / C; the figure is the
ideal time over the measured time. Each repetition runs a config of its own, so that no answer
is reused.

    .venv/bin/python bench/bench_eval_run.py [--cases N] [--latency S] [--concurrency C] [--repeat R]

Target (issue 14): >= 90 % of the ideal for 2,000 cases, 200 ms, concurrency 32.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 0.90
FAKE_SERVER = """
import sys, time
from demo.fake_anthropic import FakeAnthropic
fake = FakeAnthropic().start()
fake.latency = float(sys.argv[1])
print(fake.base_url, flush=True)
while True:
    time.sleep(3600)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-eval-run-"))
    server = subprocess.Popen(
        [sys.executable, "-c", FAKE_SERVER, str(args.latency)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        os.environ.update(
            {
                "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
                "FLAGSTAFF_VAR_DIR": str(workdir),
                "SECRET_KEY": "bench-only",
                "ANTHROPIC_API_KEY": "sk-ant-api03-fake-key",
                "ANTHROPIC_BASE_URL": base_url,
                "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            }
        )
        for name in ("REDIS_URL", "CELERY_BROKER_URL"):
            os.environ.pop(name, None)
        ratios = [run_once(args, repetition, server.pid) for repetition in range(args.repeat)]
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"cores: {os.cpu_count()}  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
        f"throughput vs ideal over {args.repeat} runs: min {min(ratios):.1%}  median "
        f"{statistics.median(ratios):.1%}  max {max(ratios):.1%}  (spread "
        f"{max(ratios) - min(ratios):.1%} points)  target >= {TARGET:.0%}: "
        f"{'met' if statistics.median(ratios) >= TARGET else 'NOT met'}"
    )


def run_once(args: argparse.Namespace, repetition: int, server_pid: int) -> float:
    import django

    if repetition == 0:
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from flags.catalog import seed_catalog

        seed_catalog()
    from django.db import connections

    from controlplane.audit import Actor
    from evals.models import EvalRun
    from evals.services import runs
    from evals.services.runs.lifecycle import part_concurrencies
    from flags import services as flag_services
    from tests.evals.run_factories import make_eval_set_version

    actor = Actor.system("bench")
    flag = flag_services.create_flag(key=f"bench-{repetition}", name="", surface="chat", actor=actor)
    content = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 100,
        "system": f"Answer briefly (run {repetition}).",
    }
    version = flag_services.create_version(flag=flag, content=content, actor=actor).version
    eval_set_version = make_eval_set_version(args.cases, scorers=[{"name": "contains"}])
    run = runs.start_run(
        flag=flag,
        eval_set_version=eval_set_version,
        config_version=version,
        actor=actor,
        concurrency=args.concurrency,
    )
    shares = part_concurrencies(args.concurrency)
    # The task of each part, as `enqueue_parts` sends them: a run of one part is sent whole.
    parts: list[int | None] = [None] if len(shares) == 1 else list(range(len(shares)))
    connections.close_all()  # each worker process opens its own connection
    context = multiprocessing.get_context("fork")
    go, reports = context.Event(), context.SimpleQueue()
    workers = [context.Process(target=work_part, args=(run.pk, part, go, reports)) for part in parts]
    for worker in workers:
        worker.start()
    ready = [reports.get() for _ in workers]
    assert all(report == "ready" for report in ready), ready
    server_cpu = process_cpu_seconds(server_pid)
    started = time.perf_counter()
    go.set()
    outcomes = [reports.get() for _ in workers]
    elapsed = time.perf_counter() - started
    server_cpu = process_cpu_seconds(server_pid) - server_cpu
    for worker in workers:
        worker.join()
    run = EvalRun.objects.get(pk=run.pk)
    cpu = sum(worker_cpu for _, worker_cpu in outcomes)
    ideal = args.cases * args.latency / args.concurrency
    ratio = ideal / elapsed
    print(
        f"run {repetition + 1}: {run.state} ({', '.join(outcome for outcome, _ in outcomes)}), "
        f"{run.cases_done}/{args.cases} cases in {elapsed:.2f} s by {len(workers)} worker "
        f"process(es) of {'/'.join(map(str, shares))} calls in flight ({args.cases / elapsed:.0f} "
        f"cases/s, {cpu / args.cases * 1000:.2f} ms CPU a case in the workers, "
        f"{server_cpu / args.cases * 1000:.2f} ms in the fake server); ideal {ideal:.2f} s; "
        f"throughput {ratio:.1%} of ideal; load average over the last minute "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    return ratio


def work_part(run_id: int, part: int | None, go: Event, reports: Any) -> None:
    """One worker process: the task's call, again while it says "continued" (a fresh task would)."""
    from django.db import connections

    from controlplane.boot import prepare_worker_process
    from evals.services import runs

    prepare_worker_process()  # what a pool process does once forked (worker_process_init)
    reports.put("ready")
    go.wait()
    cpu_started = time.process_time()
    outcome = "continued"
    while outcome == "continued":
        outcome = runs.execute_run(run_id=run_id, part=part)
    connections.close_all()
    reports.put((outcome, time.process_time() - cpu_started))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
