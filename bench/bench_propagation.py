"""Propagation: from a split-change API call's return until every streaming client resolves it.

Starts the production-style processes on this machine: a PostgreSQL database of its own
(created, migrated and dropped here), a Redis db (flushed at start and end; revisions are
announced over its pub/sub), gunicorn (gthread, DEBUG off) for the request/response API, and
the stream process (uvicorn, controlplane.asgi), which the snapshot answers name to clients
(FLAGSTAFF_STREAM_URL). Seeds an environment, a flag with three rules and a 10 % split, a
`resolve` token bound to the environment and a `write` token.

Then starts real `flagstaff.Flagstaff(refresh="stream")` clients spread over load-generator
processes (this script with --loadgen, CLIENTS_PER_PROCESS each), so that no one interpreter is
the bottleneck. For each of CHANGES split changes (`PUT .../split/` with a new weight) the clock
starts when the call returns; each client's time is when it got the new revision
(`revision_received_at`, wall clock, shared by the processes) minus that moment, and every
client must then resolve with that revision. A client that has not got it within 30 s is missed.

Reports, per population (`--clients 1000 5000`: 1,000 clients measured, then 4,000 more started
and the 5,000 measured, on the same servers): per change p50 / p99 / max and missed; streams
open at the stream process versus clients (refused = the difference); the stream process's RSS
per 1,000 streams; the web processes' requests during each change (from gunicorn's access log:
a stampede of snapshot fetches would show here); the CPU of the load generators and of the
stream process; the load averages. The core count is printed once. Targets (issue 17): 1,000
clients p99 <= 200 ms, 5,000 p99 <= 1 s, 0 missed, 0 refused.

    .venv/bin/python bench/bench_propagation.py [--clients 1000 5000] [--clients-per-process 250]
        [--changes 5] [--web-port 0] [--stream-port 0] [--database NAME] [--redis-db N]

Ports 0 pick free ones. Every process it starts is stopped on exit, also on Ctrl-C, SIGTERM or an
error (a load generator also stops when this script's pipe to it closes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._services import ENVIRONMENT, FLAG_KEY, Setup, cpu_seconds, free_port  # noqa: E402

TARGETS_P99_S = {1000: 0.2, 5000: 1.0}
WAIT_TIMEOUT = 30.0
CONTEXT = {"targetingKey": "user-1", "plan": "pro", "email": "a@other.org", "appVersion": "2.3.1"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# The load generator (a child process) -----------------------------------------------------


def loadgen(url: str, token: str, count: int) -> None:
    """Hold `count` clients; answer `wait <revision>` lines on stdin with one JSON line."""
    from flagstaff import Flagstaff

    logging.basicConfig(level=logging.ERROR)

    def connect(_: int) -> Flagstaff:
        return Flagstaff(url=url, token=token, environment=ENVIRONMENT, refresh="stream", timeout=30)

    with ThreadPoolExecutor(max_workers=16) as pool:
        clients = list(pool.map(connect, range(count)))
    # A client whose first fetch timed out (a fleet connecting at once) keeps trying by itself.
    # Measured from when every stream is open: the changes, not the fleet's arrival.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not all(c.revision is not None and c.streaming for c in clients):
        time.sleep(0.1)
    ready = {
        "ready": count,
        "without_snapshot": sum(c.revision is None for c in clients),
        "without_stream": sum(not c.streaming for c in clients),
    }
    print(json.dumps(ready), flush=True)
    fetches, endings = tally(clients)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command != "wait":
            break
        expected = int(argument)
        deadline = time.monotonic() + WAIT_TIMEOUT
        # Each client's own condition: waiting costs nothing while the clients apply the change.
        for client in clients:
            client.wait_for_revision(expected, max(0.0, deadline - time.monotonic()))
        received: list[float] = []
        missed = 0
        for client in clients:
            at = client.revision_received_at
            resolved = client.resolve(FLAG_KEY, CONTEXT)
            if at is None or resolved.revision is None or resolved.revision < expected:
                missed += 1
            else:
                received.append(at.timestamp())
        fetched, ended = tally(clients)
        answer = {
            "received": received,
            "missed": missed,
            "fetches": dict(fetched - fetches),
            "endings": dict(ended - endings),
        }
        fetches, endings = fetched, ended
        print(json.dumps(answer), flush=True)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda client: client.close(timeout=2), clients))


def tally(clients: list[Any]) -> tuple[Counter[str], Counter[str]]:
    """The clients' snapshot fetches by reason and stream endings by how, summed."""
    fetches: Counter[str] = Counter()
    endings: Counter[str] = Counter()
    for client in clients:
        fetches.update(client.snapshot_fetches)
        endings.update(client.stream_endings)
    return fetches, endings


# The driver -------------------------------------------------------------------------------


def established(port: int) -> int:
    """TCP connections established to local `port` (Linux /proc/net/tcp): open streams."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def line_count(path: str) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


class Generators:
    """The load-generator processes; `close()` stops every one."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, url: str, token: str, clients: int, processes: int) -> int:
        """Start `clients` more clients in `processes` more processes; wait until all have a
        snapshot and an open stream (at most 180 s); returns how many have no stream."""
        shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        started = []
        for share in shares:
            argv = [sys.executable, __file__, "--loadgen", url, token, str(share)]
            started.append(
                subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            )
        self.processes.extend(started)
        answers = [self._answer(process) for process in started]
        without = sum(answer["without_snapshot"] for answer in answers)
        if without:
            raise SystemExit(f"{without} clients got no snapshot")
        return sum(answer["without_stream"] for answer in answers)

    @staticmethod
    def _answer(process: subprocess.Popen[str]) -> dict[str, Any]:
        stdout: IO[str] | None = process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise SystemExit(f"a load generator exited with status {process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def wait(self, revision: int) -> tuple[list[float], int, Counter[str], Counter[str]]:
        """Each client's time of getting `revision`, the clients that missed it, and the
        snapshot fetches (by reason) and stream endings (by how) since the last wait."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"wait {revision}\n")
            process.stdin.flush()
        received: list[float] = []
        missed = 0
        fetches: Counter[str] = Counter()
        endings: Counter[str] = Counter()
        for process in self.processes:
            answer = self._answer(process)
            received.extend(answer["received"])
            missed += answer["missed"]
            fetches.update(answer["fetches"])
            endings.update(answer["endings"])
        return received, missed, fetches, endings

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None and process.stdin is not None:
                try:
                    process.stdin.write("close\n")
                    process.stdin.close()
                except OSError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class StreamProcess:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int, env: dict[str, str]) -> None:
        from controlplane.management.commands.serve import stream_command

        self.process = subprocess.Popen(stream_command("127.0.0.1", port), cwd=ROOT, env=env)
        import http.client

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the stream process exited with status {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the stream process did not come up within 180 s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def change(setup: Setup, weight: int) -> float:
    """A split change through the API; the moment its answer returned (wall clock)."""
    for attempt in range(3):
        status, answer = setup.request(
            "PUT",
            f"/api/v1/flags/{FLAG_KEY}/environments/{ENVIRONMENT}/split/",
            {"candidate": 5, "weight": weight, "reason": "bench"},
            scope="write",
        )
        returned = time.time()
        if status == 200 and answer["split"]["weight"] == weight:
            return returned
        # The shared PostgreSQL may refuse a connection for a moment (its max_connections):
        # the same change again is harmless, and the clock starts at its answer.
        print(f"the split change failed ({status} {answer}); attempt {attempt + 2} of 3", file=sys.stderr)
        time.sleep(1.0)
    raise SystemExit("the split change failed 3 times")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--loadgen":
        loadgen(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1000, 5000], help="client populations, measured in turn"
    )
    # A service holds one client in its process; a load generator holds many, each with its
    # thread, all woken by the same event and queueing for one GIL (context switches, timed GIL
    # waits). More processes trade that queue for switches between processes: on 2026-12-06, at
    # 5,000 clients, 250 per process cost 172-218 µs of CPU a client per change and 50 per
    # process 218-284 µs (bench/README.md).
    parser.add_argument("--clients-per-process", type=int, default=250, help="clients per load generator")
    parser.add_argument("--changes", type=int, default=5, help="measured changes per population")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between changes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    # Few: with changes pushed, the web processes serve little during a change, and every thread
    # may hold a connection of a PostgreSQL that others share.
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--web-port", type=int, default=0)
    parser.add_argument("--stream-port", type=int, default=0)
    parser.add_argument("--database", default="flagstaff_bench_prop")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # SIGTERM unwinds like Ctrl-C, so that the finally below stops every process started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    stream_port = args.stream_port or free_port()
    descriptor, access_log = tempfile.mkstemp(prefix="flagstaff-bench-access-", suffix=".log")
    os.close(descriptor)
    setup = Setup(
        database=args.database,
        redis_db=args.redis_db,
        workers=args.workers,
        threads=args.threads,
        port=args.web_port,
        access_log=access_log,
        extra_env={"FLAGSTAFF_STREAM_URL": f"http://127.0.0.1:{stream_port}"},
    )
    streams = StreamProcess()
    generators = Generators()
    populations: list[dict[str, Any]] = []
    changes = 0
    try:
        setup.start()
        streams.start(stream_port, setup.env)
        rss_idle = rss_kib(streams.pid)
        connected = 0
        for clients in sorted(set(args.clients)):
            load_before = os.getloadavg()
            began = time.perf_counter()
            stream_cpu_before = cpu_seconds([streams.pid])
            more = clients - connected
            without_stream = generators.start(
                setup.url, setup.tokens["resolve"], more, -(-more // args.clients_per_process)
            )
            connected = clients
            population: dict[str, Any] = {
                "clients": clients,
                "processes": len(generators.pids),
                "started_in": time.perf_counter() - began,
                "started": more,
                "without_stream": without_stream,
                "stream_cpu_connecting": cpu_seconds([streams.pid]) - stream_cpu_before,
                "rows": [],
            }
            time.sleep(2.0)
            population["open"] = established(stream_port)
            population["rss_idle"], population["rss_full"] = rss_idle, rss_kib(streams.pid)
            for number in range(args.changes + 1):  # the first one warms up and is not counted
                time.sleep(args.pause)
                changes += 1
                row = measure(setup, generators, streams.pid, access_log, 1000 + 100 * changes)
                row["revision"] = setup.revision
                if number:
                    population["rows"].append(row)
            population["load"] = load_before, os.getloadavg()
            # Printed at once: a larger population that fails later does not lose these figures.
            report(population, None if populations else args)
            populations.append(population)
    finally:
        generators.close()
        streams.close()
        setup.close()
        Path(access_log).unlink(missing_ok=True)


def measure(
    setup: Setup, generators: Generators, stream_pid: int, access_log: str, weight: int
) -> dict[str, Any]:
    """One split change and what it cost."""
    requests_before = line_count(access_log)
    cpu_before = cpu_seconds(generators.pids), cpu_seconds([stream_pid])
    returned = change(setup, weight)
    expected = setup.revision + 1
    received, missed, fetches, endings = generators.wait(expected)
    wall = time.time() - returned
    requests = line_count(access_log) - requests_before - 1  # less the PUT
    cpu_after = cpu_seconds(generators.pids), cpu_seconds([stream_pid])
    setup.revision = expected
    return {
        "weight": weight,
        "seconds": [max(0.0, at - returned) for at in received],
        "missed": missed,
        "fetches": fetches,
        "endings": endings,
        "requests": requests,
        "wall": wall,
        "loadgen_cpu": cpu_after[0] - cpu_before[0],
        "stream_cpu": cpu_after[1] - cpu_before[1],
    }


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counter.items())) or "none"


def report(population: dict[str, Any], args: argparse.Namespace | None) -> None:
    """Print one population's figures; with `args`, the set-up first."""
    if args is not None:
        print(
            f"cores: {os.cpu_count()}  web: gunicorn {args.workers} workers x {args.threads} threads;"
            f" streams: one uvicorn process (uvloop, httptools); PostgreSQL database {args.database},"
            f" Redis db {args.redis_db} (pub/sub)"
        )
        print("clock: from the PUT .../split/ call's return to each client getting the new revision")
    clients, rows = population["clients"], population["rows"]
    (before, after), opened = population["load"], population["open"]
    per_open = population["stream_cpu_connecting"] / population["started"]
    print()
    print(
        f"== {clients} clients: flagstaff.Flagstaff(refresh='stream') in {population['processes']} processes"
        f" (snapshots and streams in {population['started_in']:.1f} s, {population['without_stream']} without"
        f" a stream; the stream process spent {per_open * 1e6:.0f} µs of CPU per stream opened);"
        f" load average (1, 5 min) before"
        f" {before[0]:.2f} {before[1]:.2f}, after {after[0]:.2f} {after[1]:.2f}"
    )
    # Other connections (a client reconnecting while its old stream is being closed) may count.
    refused = max(0, clients - opened)
    per_thousand = (population["rss_full"] - population["rss_idle"]) / max(opened, 1) * 1000 / 1024
    print(
        f"streams open: {opened} (refused {refused}); stream process RSS"
        f" {population['rss_idle'] / 1024:.0f} MiB idle, {population['rss_full'] / 1024:.0f} MiB with the"
        f" streams: {per_thousand:.1f} MiB per 1,000 streams"
    )
    header = f"{'change':<18}{'rev':>5}{'got':>6}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'missed':>7}"
    print(
        header
        + f"{'web req':>8}{'req/s':>7}{'loadgen CPU':>12}{'stream CPU':>11}{'ms/1k cl':>10}{'ms/1k st':>10}"
    )
    everything: list[float] = []
    missed = 0
    for row in rows:
        seconds = row["seconds"]
        everything.extend(seconds)
        missed += row["missed"]
        if seconds:
            p50, p99, top = statistics.median(seconds), percentile(seconds, 0.99), max(seconds)
            figures = f"{p50 * 1000:>8.1f}{p99 * 1000:>8.1f}{top * 1000:>8.1f}"
        else:
            figures = f"{'-':>8}{'-':>8}{'-':>8}"
        wall = max(row["wall"], 1e-3)
        label = f"weight -> {row['weight']} bp"
        print(
            f"{label:<18}{row['revision']:>5}{len(seconds):>6}{figures}{row['missed']:>7}"
            f"{row['requests']:>8}{row['requests'] / wall:>7.0f}"
            f"{row['loadgen_cpu'] / wall * 100:>11.0f}%{row['stream_cpu'] / wall * 100:>10.0f}%"
            f"{row['loadgen_cpu'] / clients * 1e6:>10.0f}{row['stream_cpu'] / clients * 1e6:>10.0f}"
        )
        if row["fetches"] or row["endings"]:
            print(
                f"{'':<18}snapshot fetches {_counts(row['fetches'])}; streams ended {_counts(row['endings'])}"
            )
    if not everything:
        print("no client got any change", flush=True)
        return
    p50, p99 = statistics.median(everything), percentile(everything, 0.99)
    print(
        f"{'all changes':<18}{'':>5}{len(everything):>6}{p50 * 1000:>8.1f}{p99 * 1000:>8.1f}"
        f"{max(everything) * 1000:>8.1f}{missed:>7}"
    )
    print(
        "(CPU: % of one core over the change's wall time, from the call's return to the last client;"
        " ms/1k: CPU milliseconds per 1,000 clients of the load generators (cl) and the stream"
        " process (st) for the change)"
    )
    target = TARGETS_P99_S.get(clients, 1.0 if clients > 1000 else 0.2)
    met = p99 <= target and missed == 0 and refused == 0
    print(
        f"target: p99 <= {target * 1000:.0f} ms, 0 missed, 0 refused: {p99 * 1000:.1f} ms,"
        f" {missed} missed, {refused} refused -> {'met' if met else 'NOT met'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
