"""Telemetry ingest throughput: the API under concurrent senders vs a raw PostgreSQL COPY.

Runs the production-style setup on this machine: a PostgreSQL database of its own (created and
dropped here, on the local server 127.0.0.1:5432 as root), migrated; gunicorn as
`manage.py serve` runs it, on a free loopback port; N concurrent senders posting 1,000-record
batches, each on a connection of its own as the flagstaff client does (about 2 % invalid
records and some batches sent twice, so that the loss check sees every outcome). Then, in
the same run, the rows the API stored are copied out and loaded again with one raw
`COPY ... FROM STDIN (FORMAT BINARY)` into the emptied call table, the baseline.

Prints records/s through the API, COPY rows/s, their ratio, the loss check
(sent = stored + duplicates + rejected, and rollup calls = stored) and the core count.
Targets: >= 20,000 records/s (issue "telemetry", item 10) and >= 50 % of the COPY rate
measured in the same run (issue 17, item 6; it was 25 %).

    .venv/bin/python bench/bench_ingest.py [--records N] [--senders N] [--workers N] [--threads N]
        [--port N] [--database NAME] [--keep]

Also prints the CPU time per 1,000 records of the web workers, the database backends and the
senders (on a shared machine the rate follows what else runs, the CPU cost much less so), the
cores they and the whole machine kept busy while timed, the COPY's CPU per row, and the ratio
the API's CPU per record would allow with every core busy.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import psycopg

from bench._services import (
    GUNICORN_CONF,
    busy_cores,
    cpu_seconds,
    cpu_times,
    free_port,
    process_tree,
)
from controlplane.management.commands.serve import WEB_THREADS, WEB_WORKERS

ROOT = Path(__file__).resolve().parent.parent

PG_SERVER = "postgresql://root@127.0.0.1:5432"
BATCH = 1000
TARGET_RATE = 20_000
TARGET_RATIO = 0.5
# The baseline (v1) on Sonnet 5.5 and a canary (v2) on Opus 5.5: a version pins its model.
MODELS = ("claude-sonnet-5-5", "claude-opus-5-5")
STOP_REASONS = ("end_turn",) * 8 + ("max_tokens", "tool_use")


def recreate_database(name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare(env: dict[str, str]) -> tuple[str, list[str]]:
    """Migrate (which seeds the model catalog), then create a flag, versions and a token."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    script = (
        "import json\n"
        "from controlplane.audit import Actor\n"
        "from controlplane.services import create_api_token\n"
        "from flags import services\n"
        "actor = Actor.system('bench')\n"
        "env = services.create_environment(key='production', name='Production', actor=actor)\n"
        "flag = services.create_flag(key='bench-chat', name='Bench chat', surface='chat', actor=actor)\n"
        f"models = {MODELS!r}\n"
        "for model in models:\n"
        "    content = {'model': model, 'max_tokens': 1024, 'cache_control': {'type': 'ephemeral'}}\n"
        "    services.create_version(flag=flag, content=content, actor=actor)\n"
        "token = create_api_token(name='bench', scopes=['telemetry'], actor=actor)\n"
        "states = [f'fs1:production:bench-chat:{v}:{a}:{s}:{env.revision}'"
        " for v, a, s in ((1, '-', '-'), (2, 'canary', 'split-1'), (1, 'control', 'split-1'))]\n"
        "print(json.dumps({'token': token.secret, 'states': states}))\n"
    )
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    setup = orjson.loads(output.strip().splitlines()[-1])
    return setup["token"], setup["states"]


def make_batches(total: int, states: list[str], *, seed: int = 7) -> tuple[list[bytes], int]:
    """Serialized batches (some sent twice) and how many records they hold in all.

    Traffic of one flag: baseline, canary and control arms (the canary's version on another
    model), batches 3 s apart and ending a minute ago, 70 % of prompts read from the cache.
    """
    rng = random.Random(seed)
    # Three seconds a batch, the last a minute before now: however many records, none is ahead
    # of the clock (the ingest rejects records over FLAGSTAFF_TELEMETRY_MAX_FUTURE_SECONDS ahead).
    start = datetime.now(UTC) - timedelta(seconds=3 * (total // BATCH) + 60)
    batches: list[bytes] = []
    sent = 0
    for number in range(total // BATCH):
        records = []
        for i in range(BATCH):
            cached = rng.random() < 0.7
            state = rng.choice(states)
            record: dict[str, Any] = {
                "request_id": f"req_{number:05d}_{i:04d}_{rng.getrandbits(40):010x}",
                "timestamp": (start + timedelta(seconds=number * 3 + i / 400)).isoformat(),
                "model": MODELS[1] if ":canary:" in state else MODELS[0],
                "stop_reason": rng.choice(STOP_REASONS),
                "usage": {
                    "input_tokens": rng.randint(50, 4000),
                    "output_tokens": rng.randint(10, 1500) if i % 50 else -1,  # 2 % invalid
                    "cache_creation_input_tokens": 0 if cached else 2048,
                    "cache_read_input_tokens": 6000 if cached else 0,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 0 if cached else 2048,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "service_tier": "standard",
                    "inference_geo": "global",
                },
                "latency_ms": round(rng.lognormvariate(7, 0.5), 1),
                "ttft_ms": round(rng.lognormvariate(5.5, 0.4), 1),
                "flag_state": state,
                "user_id": f"user-{rng.randint(1, 5000)}",
                "session_id": f"sess-{rng.randint(1, 20000)}",
                "surface": "chat",
            }
            if i % 97 == 0:
                record["error"] = {"type": "overloaded_error", "status": 529}
                record["stop_reason"] = None
            records.append(record)
        body = orjson.dumps({"records": records})
        batches.append(body)
        sent += BATCH
        if number % 20 == 5:  # a retried batch: every record a duplicate
            batches.append(body)
            sent += BATCH
    return batches, sent


def start_server(env: dict[str, str], port: int, workers: int, threads: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "gunicorn", "controlplane.wsgi:application",
        "--config", str(GUNICORN_CONF),
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--log-level", "warning", "--timeout", "120",
    ]  # fmt: skip
    server = subprocess.Popen(argv, cwd=ROOT, env=env)
    deadline = time.monotonic() + 180  # a loaded shared machine takes over a minute to import Django
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not come up")


def send_all(
    port: int, token: str, batches: list[bytes], senders: int
) -> tuple[list[dict[str, Any]], list[float]]:
    work: queue.Queue[bytes] = queue.Queue()
    for body in batches:
        work.put(body)
    results: list[dict[str, Any]] = []
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def sender() -> None:
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            began = time.perf_counter()
            # A connection per batch, as the flagstaff client's TelemetrySender posts
            # (flagstaff._http.request). Kept-alive connections would each stay on the worker
            # the kernel's hash gave them (a listening socket per worker): six of them went
            # 3/3, 2/4, 1/5 or all to one worker, run by run, and one worker's interpreter
            # lock then capped the whole run.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request("POST", "/api/v1/telemetry/calls", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    failures.append(repr(exc))
                continue
            finally:
                conn.close()
            elapsed = time.perf_counter() - began
            with lock:
                if response.status != 200:
                    failures.append(f"HTTP {response.status}: {payload[:200]!r}")
                else:
                    results.append(orjson.loads(payload))
                    latencies.append(elapsed)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return results, latencies


def backend_pids(url: str, database: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
        ).fetchall()
    return [int(row[0]) for row in rows]


def measure_copy(url: str) -> tuple[int, float, float]:
    """Copy the stored calls out, empty the table, and time one COPY of them back in: the rows,
    the seconds, and the CPU seconds it cost (its backend's and this process's)."""
    with psycopg.connect(url) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'telemetry_callrecord' AND column_name <> 'id' ORDER BY ordinal_position"
            )
        ]
        names = ", ".join(f'"{name}"' for name in columns)
        blob = io.BytesIO()
        query = f"COPY (SELECT {names} FROM telemetry_callrecord) TO STDOUT (FORMAT BINARY)"  # noqa: S608
        with conn.cursor().copy(query) as out:
            for chunk in out:
                blob.write(chunk)
        rows = conn.execute("SELECT count(*) FROM telemetry_callrecord").fetchone()
        conn.execute("TRUNCATE telemetry_callrecord CASCADE")
        conn.commit()
        data = blob.getvalue()
        backend = [conn.info.backend_pid]
        cpu = cpu_seconds(backend) + time.process_time()
        began = time.perf_counter()
        with conn.cursor().copy(f"COPY telemetry_callrecord ({names}) FROM STDIN (FORMAT BINARY)") as into:
            for offset in range(0, len(data), 1 << 20):
                into.write(data[offset : offset + (1 << 20)])
        conn.commit()
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(backend) + time.process_time() - cpu
    assert rows is not None
    return int(rows[0]), elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--senders", type=int, default=6)
    # `manage.py serve`'s web server. With two threads per worker, the kernel's hash of the six
    # senders' connections over the workers' sockets (reuse_port) often gave one worker 4 or 5 of
    # them, served two at a time, while the other worker had 1 or 2: cores went idle.
    parser.add_argument("--workers", type=int, default=WEB_WORKERS)
    parser.add_argument("--threads", type=int, default=WEB_THREADS)
    parser.add_argument("--database", default="flagstaff_bench")
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    url = f"{PG_SERVER}/{args.database}"
    var_dir = tempfile.mkdtemp(prefix="flagstaff-bench-")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-only-secret-key",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "FLAGSTAFF_VAR_DIR": var_dir,
        "PYTHONPATH": str(ROOT),
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)

    load_before = os.getloadavg()[0]
    try:
        recreate_database(args.database)
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); try `make services`."
        ) from None
    server = None
    try:
        token, states = prepare(env)
        batches, sent = make_batches(args.records, states)
        port = args.port or free_port()
        server = start_server(env, port, args.workers, args.threads)
        # As many requests at once as the timed phase has, so that the threads it uses have
        # mostly opened their database connections (persistent: CONN_MAX_AGE).
        warm = max(args.senders, args.workers * 2)
        warmup, _ = send_all(port, token, batches[:warm], warm)
        watched_web = process_tree(server.pid)
        db_before = {pid: cpu_seconds([pid]) for pid in backend_pids(url, args.database)}
        cpu_web = cpu_seconds(watched_web)
        per_process = [cpu_seconds([pid]) for pid in watched_web]
        machine_began = cpu_times()
        began, sender_began = time.perf_counter(), time.process_time()
        results, latencies = send_all(port, token, batches[warm:], args.senders)
        elapsed, cpu_senders = time.perf_counter() - began, time.process_time() - sender_began
        machine_busy = busy_cores(machine_began, cpu_times(), elapsed)
        cpu_web = cpu_seconds(watched_web) - cpu_web
        # A thread that first served a request in the timed phase opened its backend then.
        watched_db = backend_pids(url, args.database)
        cpu_db = sum(cpu_seconds([pid]) - db_before.get(pid, 0.0) for pid in watched_db)
        per_process = [
            cpu_seconds([pid]) - spent for pid, spent in zip(watched_web, per_process, strict=True)
        ]
        server.terminate()
        server.wait(timeout=30)
        server = None

        timed_records = sum(len(orjson.loads(b)["records"]) for b in batches[warm:])
        every = warmup + results
        accepted = sum(r["accepted"] for r in every)
        duplicate = sum(r["duplicate"] for r in every)
        rejected = sum(len(r["rejected"]) for r in every)
        with psycopg.connect(url) as conn:
            stored_row = conn.execute("SELECT count(*) FROM telemetry_callrecord").fetchone()
            rollup_row = conn.execute("SELECT coalesce(sum(calls), 0) FROM telemetry_rollup").fetchone()
        assert stored_row is not None
        assert rollup_row is not None
        stored, rolled_up = int(stored_row[0]), int(rollup_row[0])
        copy_rows, copy_elapsed, copy_cpu = measure_copy(url)

        rate = timed_records / elapsed
        copy_rate = copy_rows / copy_elapsed
        ratio = rate / copy_rate
        latencies.sort()
        loss_ok = sent == stored + duplicate + rejected and stored == accepted == rolled_up
        print(f"cores: {os.cpu_count()}  gunicorn: {args.workers} workers x {args.threads} threads", end="")
        print(f"  senders: {args.senders}")
        print(f"API ingest: {timed_records:,} records in {elapsed:.2f} s = {rate:,.0f} records/s")
        print(
            f"  per 1,000-record request: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
            f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms"
        )
        per_thousand = 1000 / timed_records
        print(
            f"  CPU per 1,000 records: web {cpu_web * per_thousand * 1000:.0f} ms,"
            f" database backends {cpu_db * per_thousand * 1000:.0f} ms,"
            f" senders {cpu_senders * per_thousand * 1000:.0f} ms"
            f" (machine load average before the run: {load_before:.1f}, after: {os.getloadavg()[0]:.1f})"
        )
        ours = (cpu_web + cpu_db + cpu_senders) / elapsed
        print(
            f"  cores busy while timed: web {cpu_web / elapsed:.2f} + database {cpu_db / elapsed:.2f}"
            f" + senders {cpu_senders / elapsed:.2f} = {ours:.2f}; the whole machine"
            f" {machine_busy:.2f} of {os.cpu_count()} (other work {max(0.0, machine_busy - ours):.2f});"
            f" per web process (master first) {' / '.join(f'{spent / elapsed:.2f}' for spent in per_process)}"
        )
        print(f"raw COPY:   {copy_rows:,} rows in {copy_elapsed:.2f} s = {copy_rate:,.0f} rows/s")
        # The COPY is one backend on one core; the API may use every core. With every core busy
        # with the API and the COPY running at its CPU cost, the ratio would be this, whatever
        # the load: the ceiling that the API's CPU per record leaves.
        api_cpu = (cpu_web + cpu_db + cpu_senders) / timed_records
        ceiling = (os.cpu_count() or 1) * (copy_cpu / copy_rows) / api_cpu
        print(
            f"  COPY CPU per 1,000 rows: {copy_cpu / copy_rows * 1e6:.1f} ms (API: {api_cpu * 1e6:.1f} ms"
            f" per 1,000 records); the ratio with every core on the API and the COPY at its CPU cost:"
            f" {ceiling:.1%}"
        )
        print(f"ratio API / COPY: {ratio:.1%}")
        print(
            f"loss check: sent {sent:,} = stored {stored:,} + duplicate {duplicate:,} + rejected {rejected:,}"
            f" -> {'OK' if sent == stored + duplicate + rejected else 'MISMATCH'};"
            f" rollup calls {rolled_up:,} = stored -> {'OK' if rolled_up == stored else 'MISMATCH'}"
        )
        print(
            f"targets: >= {TARGET_RATE:,} records/s {'met' if rate >= TARGET_RATE else 'NOT met'};"
            f" >= {TARGET_RATIO:.0%} of COPY {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
        )
        if not loss_ok:
            raise SystemExit(1)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            recreate_database(args.database, drop_only=True)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
