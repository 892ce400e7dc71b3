"""Propagation: from a split-change API call's return until 200 streaming clients resolve it.

Starts the production-style setup on this machine: a PostgreSQL database of its own
(`flagstaff_bench_prop`, created, migrated and dropped here), Redis db 12 (flushed at start
and end; revisions are announced over its pub/sub) and gunicorn (gthread, DEBUG off) with
enough threads for the streams (default 4 workers x 128 threads, at most 96 streams each:
connections spread over the workers' sockets by hash, so 200 streams spread evenly only on
average). Seeds an environment, a flag with three rules and a 10 % split, a `resolve` token
bound to the environment and a `write` token.

Then starts CLIENTS real `flagstaff.Flagstaff` clients (refresh="stream") in this process:
each follows `GET /api/v1/environments/{env}/stream` (SSE) in its own thread and re-fetches
the snapshot when a revision is announced. For each of CHANGES split changes
(`PUT /api/v1/flags/{key}/environments/{env}/split/` with a new weight), the clock starts when
the call returns; one waiter thread per client blocks in `wait_for_revision(new revision)`
and then checks that `resolve()` answers with that revision; its time is recorded. A client
that already had the revision when the call returned counts as 0 ms.

Prints p50, p99 and max per change and over all changes, and the core count.
Target (issue 3, item 11c): p99 <= 1 s.

    .venv/bin/python bench/bench_propagation.py [--clients N] [--changes N] [--workers N] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._services import ENVIRONMENT, FLAG_KEY, Setup
from flagstaff import Flagstaff

TARGET_P99_S = 1.0
WAIT_TIMEOUT = 30.0
CONTEXT = {"targetingKey": "user-1", "plan": "pro", "email": "a@other.org", "appVersion": "2.3.1"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def change_and_measure(setup: Setup, clients: list[Flagstaff], weight: int) -> tuple[int, list[float], int]:
    """One split change; (new revision, seconds per client that got it, clients that timed out)."""
    expected = max(client.revision or 0 for client in clients) + 1
    reached_at: list[float | None] = [None] * len(clients)
    ready = threading.Barrier(len(clients) + 1)

    def waiter(index: int) -> None:
        client = clients[index]
        ready.wait()
        if client.wait_for_revision(expected, WAIT_TIMEOUT):
            resolved = client.resolve(FLAG_KEY, CONTEXT)
            if resolved.revision is not None and resolved.revision >= expected:
                reached_at[index] = time.perf_counter()

    threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    ready.wait()
    status, answer = setup.request(
        "PUT",
        f"/api/v1/flags/{FLAG_KEY}/environments/{ENVIRONMENT}/split/",
        {"candidate": 5, "weight": weight, "reason": "bench"},
        scope="write",
    )
    returned = time.perf_counter()
    if status != 200 or answer["split"]["weight"] != weight:
        raise SystemExit(f"the split change failed: {status} {answer}")
    for thread in threads:
        thread.join(WAIT_TIMEOUT + 5)
    seconds = [max(0.0, at - returned) for at in reached_at if at is not None]
    return expected, seconds, len(clients) - len(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between changes")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=128)
    parser.add_argument("--database", default="flagstaff_bench_prop")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    # A quarter of each worker's threads stays for requests (snapshot fetches after a change).
    streams_per_worker = args.threads * 3 // 4
    setup = Setup(
        database=args.database,
        redis_db=args.redis_db,
        workers=args.workers,
        threads=args.threads,
        extra_env={"FLAGSTAFF_STREAMS_PER_PROCESS": str(streams_per_worker)},
    )
    clients: list[Flagstaff] = []
    load_before = os.getloadavg()
    results: list[tuple[int, int, list[float], int]] = []
    started_in = 0.0
    try:
        setup.start()

        def connect(_: int) -> Flagstaff:
            return Flagstaff(
                url=setup.url, token=setup.tokens["resolve"], environment=ENVIRONMENT, refresh="stream"
            )

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=20) as pool:
            clients.extend(pool.map(connect, range(args.clients)))
        started_in = time.perf_counter() - began
        missing = sum(client.revision is None for client in clients)
        if missing:
            raise SystemExit(f"{missing} clients got no snapshot")
        # Warm-up change: every stream is open and every worker has served the new revision once.
        time.sleep(1.0)
        _, _, warm_lost = change_and_measure(setup, clients, 1100)
        if warm_lost:
            print(f"warm-up: {warm_lost} clients did not get the change within {WAIT_TIMEOUT:g} s")
        for number in range(args.changes):
            time.sleep(args.pause)
            weight = 1200 + 100 * number
            revision, seconds, lost = change_and_measure(setup, clients, weight)
            results.append((weight, revision, seconds, lost))
    finally:
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(lambda client: client.close(timeout=2), clients))
        setup.close()
    load_after = os.getloadavg()

    print(
        f"cores: {os.cpu_count()}  gunicorn: {args.workers} workers x {args.threads} gthread threads"
        f" (at most {streams_per_worker} streams each)"
        f"  clients: {args.clients} flagstaff.Flagstaff(refresh='stream') in one process"
        f" (connected in {started_in:.1f} s)"
    )
    print(
        f"PostgreSQL database {args.database} + Redis db {args.redis_db} (pub/sub);"
        f" load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    print("clock: from the PUT .../split/ call's return to resolve() answering with the new revision")
    print()
    print(f"{'change':<22}{'revision':>9}{'clients':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'missed':>8}")
    everything: list[float] = []
    missed = 0
    for weight, revision, seconds, lost in results:
        everything.extend(seconds)
        missed += lost
        if seconds:
            p50, p99, top = (statistics.median(seconds), percentile(seconds, 0.99), max(seconds))
            figures = f"{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}{top * 1000:>9.1f}"
        else:
            figures = f"{'-':>9}{'-':>9}{'-':>9}"
        print(f"{f'weight -> {weight} bp':<22}{revision:>9}{len(seconds):>9}{figures}{lost:>8}")
    if not everything:
        raise SystemExit("no client got any change")
    p50, p99 = statistics.median(everything), percentile(everything, 0.99)
    print(
        f"{'all changes':<22}{'':>9}{len(everything):>9}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}"
        f"{max(everything) * 1000:>9.1f}{missed:>8}"
    )
    print()
    met = p99 <= TARGET_P99_S and missed == 0
    print(
        f"target: p99 <= {TARGET_P99_S * 1000:.0f} ms (every client): {p99 * 1000:.1f} ms,"
        f" {missed} missed -> {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
