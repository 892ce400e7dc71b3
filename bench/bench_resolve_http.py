"""Resolve over HTTP: `POST /api/v1/resolve` and OFREP single vs a trivial Django JSON view.

Starts the production-style setup on this machine: a PostgreSQL database of its own
(`flagstaff_bench_resolve` on the local server, created, migrated and dropped here), Redis
db 13 (flushed at start and end), and gunicorn (gthread, DEBUG off) with the bench settings
(bench/settings.py: the project's URLs, then `/bench/trivial`, a view answering
`{"ok": true}` through the same middleware). Seeds an environment, a flag with three rules and
a 10 % split, and a `resolve` token bound to the environment.

Two measured phases, each in interleaved rounds over the endpoints (on a shared machine the available
CPU drifts, and a drift should hit the endpoints alike), every request with another
`targetingKey` (the contexts match no rule, so every one reaches the split):

- `POST /bench/trivial` (the baseline, same body);
- `POST /api/v1/resolve` `{"flag", "context"}`;
- `POST /ofrep/v1/evaluate/flags/{key}` `{"context"}`.

1. Throughput: wrk (installed with apt-get when missing; a Python load generator otherwise)
   with the same number of keep-alive connections for the same duration per endpoint, after a
   warm-up. Prints req/s and the ratios to the trivial view, with wrk's p50/p99 at that
   saturation (which only restate the queue wrk builds) and the server processes' CPU time per
   request (read from /proc).
2. Latency at that load: an open-loop generator (bench/openloop.c, C) sends requests at a fixed
   rate, the target share (70 %) of the trivial view's throughput from phase 1, and measures
   each from its due time, so stalls are not hidden. Prints p50/p99/p99.9/max over every
   request of the rounds, and the server's CPU time per answer and cores used meanwhile.

Then a control, not a target: the machine's floor. bench/reference_server.c, a C server of one
epoll loop per process (as many processes as gunicorn workers) that spends the trivial view's
server CPU time per request (phase 1), is measured the same way: its throughput after phase 1,
then open loop at 70 % of its own throughput as one more endpoint of phase 2's rounds, so that
a stall of the machine shows in the control in the same minute. Its p99 is what the machine
(cores, scheduler, hypervisor, the generator beside the server) leaves to a server of that
cost at that load share.

Targets (issue 3, item 11b): resolve and OFREP >= 70 % of the trivial view's throughput, with
p99 <= 20 ms at that load.

    .venv/bin/python bench/bench_resolve_http.py [--duration S] [--latency-duration S] [--rounds N]
        [--connections N] [--workers N] [--threads N] [--python-client] [--open-loop-connections N]
        [--no-ofrep-rate-limit]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _load
from bench._services import FLAG_KEY, Setup, cpu_seconds, cpu_times, free_port, process_tree

TARGET_RATIO = 0.70
TARGET_P99_MS = 20.0

# The body is rebuilt per request with a fresh targetingKey; `done` prints one JSON line.
WRK_SCRIPT = """
local counter = 0
local prefix = os.getenv("BENCH_BODY_PREFIX")
local suffix = os.getenv("BENCH_BODY_SUFFIX")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
function setup(thread)
  thread:set("tid", math.random(1, 1000000))
end
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, prefix .. tid .. "-" .. counter .. suffix)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"status_errors": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Target:
    """Where the load goes: a loopback port, and the bearer token to send."""

    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float = 0.0
    """CPU seconds the server's processes spent meanwhile (set by `on_server`)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu / max(1, self.requests) * 1e6


def combine(results: list[Result]) -> Result:
    """Rounds together: total requests over total time, the median p50, the worst p99."""
    return Result(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        server_cpu=sum(r.server_cpu for r in results),
    )


Measured = TypeVar("Measured", Result, _load.OpenLoopResult)
T = TypeVar("T")
TRIVIAL_PATH = "/bench/trivial"
FLOOR = "reference"
"""Phase 3's row among phase 2's rounds."""
Arguments = ParamSpec("Arguments")


def on_server(
    pid: int, run: Callable[Arguments, Measured], *args: Arguments.args, **kwargs: Arguments.kwargs
) -> Measured:
    """`run(...)`'s result with the CPU time the server (process `pid` and its children) spent."""
    processes = process_tree(pid)
    before = cpu_seconds(processes)
    result = run(*args, **kwargs)
    return dataclasses.replace(result, server_cpu=cpu_seconds(processes) - before)


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing the Debian package with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        return shutil.which("wrk")
    return None


def body_parts(path: str) -> tuple[str, str]:
    """The JSON body around the targetingKey: prefix + unique id + suffix."""
    context_tail = '", "plan": "pro", "email": "someone@other.org", "appVersion": "2.3.1"}'
    flag = f'"flag": "{FLAG_KEY}", ' if path == "/api/v1/resolve" else ""
    return f'{{{flag}"context": {{"targetingKey": "user-', context_tail + "}"


def run_wrk(wrk: str, script: str, target: Target, path: str, connections: int, seconds: float) -> Result:
    prefix, suffix = body_parts(path)
    env = {**os.environ, "BENCH_TOKEN": target.token, "BENCH_BODY_PREFIX": prefix}
    env["BENCH_BODY_SUFFIX"] = suffix
    argv = [
        wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
        "-s", script, f"{target.url}{path}",
    ]  # fmt: skip
    output = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    data = json.loads(line[len("BENCH ") :])
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["status_errors"] + data["socket_errors"],
    )


def run_python(target: Target, path: str, connections: int, seconds: float) -> Result:
    """Fallback load generator: one thread per keep-alive connection (the GIL limits it)."""
    prefix, suffix = body_parts(path)
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
        mine: list[float] = []
        count = 0
        while time.perf_counter() < stop_at:
            count += 1
            body = f"{prefix}{number}-{count}{suffix}"
            began = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
                ok = False
            mine.append(time.perf_counter() - began)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return Result(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        errors=errors[0],
    )


def saturate(
    wrk: str | None, script: str, target: Target, path: str, connections: int, seconds: float
) -> Result:
    """Closed-loop load for throughput: wrk, or the Python generator without it."""
    if wrk:
        return run_wrk(wrk, script, target, path, connections, seconds)
    return run_python(target, path, connections, seconds)


def rotated(endpoints: dict[str, T], number: int) -> list[tuple[str, T]]:
    """Round `number`'s order: each round starts with the next endpoint, so that no endpoint is
    always measured first (right after a switch) or last."""
    items = list(endpoints.items())
    shift = number % len(items)
    return items[shift:] + items[:shift]


def steal_share(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor gave to other guests between two readings."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return spent[7] / max(1, sum(spent))


def check_answers(setup: Setup) -> None:
    """The endpoints answer what the benchmark claims before it is timed."""
    context = {"targetingKey": "user-check", "plan": "pro", "email": "a@other.org", "appVersion": "2.3.1"}
    status, answer = setup.request("POST", "/api/v1/resolve", {"flag": FLAG_KEY, "context": context})
    assert status == 200, (status, answer)
    assert answer["reason"] == "SPLIT", answer
    status, answer = setup.request("POST", f"/ofrep/v1/evaluate/flags/{FLAG_KEY}", {"context": context})
    assert status == 200, (status, answer)
    assert answer["reason"] == "SPLIT", answer
    status, answer = setup.request("POST", TRIVIAL_PATH, {"context": context})
    assert status == 200, (status, answer)
    assert answer == {"ok": True}, answer


def open_loop_head(target: Target, path: str) -> str:
    """The open-loop generator's request line and headers (it adds Content-Length and the body)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
        f"Authorization: Bearer {target.token}\r\nContent-Type: application/json\r\n"
    )


def open_loop(
    generator: _load.OpenLoop, pid: int, target: Target, path: str, rate: float, args: argparse.Namespace
) -> _load.OpenLoopResult:
    """One open-loop round at `rate` on `path`, with the server's (process `pid`) CPU time."""
    head = open_loop_head(target, path)
    prefix, suffix = body_parts(path)
    return on_server(
        pid,
        generator.run,
        target.port,
        head,
        prefix,
        suffix,
        rate=rate,
        seconds=args.latency_duration,
        connections=args.open_loop_connections,
    )


@dataclass
class Floor:
    """The reference server, running beside gunicorn, and the open-loop rate it is measured at."""

    server: _load.ReferenceServer
    throughput: Result
    rate: float

    def round(self, generator: _load.OpenLoop, args: argparse.Namespace) -> _load.OpenLoopResult:
        target = Target(self.server.port, "-")
        return open_loop(generator, self.server.process.pid, target, TRIVIAL_PATH, self.rate, args)


def start_floor(wrk: str | None, script: str, args: argparse.Namespace, burn_us: float) -> Floor:
    """Phase 3's server and its throughput; its latency rounds run among phase 2's."""
    server = _load.ReferenceServer(free_port(), args.workers, burn_us)
    target = Target(server.port, "-")
    pid = server.process.pid
    try:
        saturate(wrk, script, target, TRIVIAL_PATH, args.connections, 1.0)
        throughput = on_server(
            pid, saturate, wrk, script, target, TRIVIAL_PATH, args.connections, args.duration
        )
    except BaseException:
        server.close()
        raise
    return Floor(server, throughput, TARGET_RATIO * throughput.rate)


def measure_latency(
    generator: _load.OpenLoop,
    pid: int,
    target: Target,
    endpoints: dict[str, str],
    rate: float,
    floor: Floor,
    args: argparse.Namespace,
) -> dict[str, list[_load.OpenLoopResult]]:
    """Phase 2, with phase 3's reference server as one more endpoint of every round: a stall of
    the machine shows in the control when it happens, not minutes later."""

    def endpoint_round(path: str) -> Callable[[], _load.OpenLoopResult]:
        return lambda: open_loop(generator, pid, target, path, rate, args)

    measures = {name: endpoint_round(path) for name, path in endpoints.items()}
    measures[FLOOR] = lambda: floor.round(generator, args)
    rounds: dict[str, list[_load.OpenLoopResult]] = {name: [] for name in measures}
    for number in range(args.rounds):
        for name, measure in rotated(measures, number):
            rounds[name].append(measure())
    return rounds


def print_open_loop_row(name: str, measured_rounds: list[_load.OpenLoopResult]) -> None:
    measured = _load.combine(measured_rounds)
    by_round = " / ".join(f"{each.percentile(0.99):.1f}" for each in measured_rounds)
    print(
        f"   {name:<16}{measured.answered_rate:>11,.0f}{measured.median_ms:>9.2f}"
        f"{measured.percentile(0.99):>9.2f}{measured.percentile(0.999):>10.2f}"
        f"{measured.max_ms:>9.2f}{measured.errors:>8}{measured.cpu_us_per_answer:>8,.0f}"
        f"{measured.cores:>7.2f}  {by_round}"
    )


OPEN_LOOP_HEADER = (
    f"   {'endpoint':<16}{'answered/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'max ms':>9}"
    f"{'errors':>8}{'µs/req':>8}{'cores':>7}  each round's p99 ms"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="phase 1: seconds per endpoint and round")
    parser.add_argument(
        "--latency-duration",
        type=float,
        default=10.0,
        help="phase 2: seconds per endpoint and round (a p99 over a few seconds is one hiccup's)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the endpoints")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint")
    parser.add_argument("--connections", type=int, default=8, help="wrk's connections (phase 1)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--python-client", action="store_true", help="phase 1 with the Python load generator")
    parser.add_argument(
        "--open-loop-connections", type=int, default=32, help="open-loop generator's connections (phase 2)"
    )
    parser.add_argument(
        "--no-ofrep-rate-limit",
        action="store_true",
        help="diagnostic: run the server with FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND=0",
    )
    parser.add_argument("--database", default="flagstaff_bench_resolve")
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()

    wrk = None if args.python_client else ensure_wrk()
    saturating = "wrk 1 thread" if wrk else "python threads + http.client (wrk unavailable)"
    extra_env = {"FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND": "0"} if args.no_ofrep_rate_limit else {}
    setup = Setup(
        database=args.database,
        redis_db=args.redis_db,
        workers=args.workers,
        threads=args.threads,
        extra_env=extra_env,
    )
    warm_connections = max(args.connections, 4 * args.workers * args.threads)
    tmp = tempfile.mkdtemp(prefix="flagstaff-bench-wrk-")
    script = str(Path(tmp) / "post.lua")
    Path(script).write_text(WRK_SCRIPT)
    load_before = os.getloadavg()
    cpu_before = cpu_times()
    endpoints = {
        "trivial view": "/bench/trivial",
        "resolve": "/api/v1/resolve",
        "OFREP single": f"/ofrep/v1/evaluate/flags/{FLAG_KEY}",
    }

    generator = _load.OpenLoop()
    try:
        setup.start()
        assert setup.server is not None
        pid = setup.server.pid
        target = Target(setup.port, setup.tokens["resolve"])
        check_answers(setup)
        for path in endpoints.values():
            # Warm-up with more connections than measured, so that every worker process has
            # served the endpoint (token cached, snapshot loaded) before the clock starts.
            saturate(wrk, script, target, path, warm_connections, args.warmup)
        rounds: dict[str, list[Result]] = {name: [] for name in endpoints}
        for number in range(args.rounds):
            for name, path in rotated(endpoints, number):
                rounds[name].append(
                    on_server(pid, saturate, wrk, script, target, path, args.connections, args.duration)
                )
        results = {name: combine(measured) for name, measured in rounds.items()}
        rate = TARGET_RATIO * results["trivial view"].rate
        burn_us = results["trivial view"].cpu_us_per_request
        floor = start_floor(wrk, script, args, burn_us)
        try:
            latency_rounds = measure_latency(generator, pid, target, endpoints, rate, floor, args)
        finally:
            floor.server.close()
        latencies = {name: _load.combine(measured) for name, measured in latency_rounds.items()}
    finally:
        setup.close()
        generator.close()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    steal = steal_share(cpu_before, cpu_times())

    print(
        f"cores: {os.cpu_count()}  gunicorn: {args.workers} workers x {args.threads} gthread threads;"
        f" PostgreSQL database {args.database} + Redis db {args.redis_db}"
        + ("; OFREP rate limit OFF (diagnostic)" if args.no_ofrep_rate_limit else "")
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f};"
        f" CPU stolen by the hypervisor during the run: {steal:.1%}"
    )
    print()
    trivial = results["trivial view"]
    print(
        f"1. throughput: {saturating}, {args.connections} keep-alive connections, {args.rounds} interleaved"
        f" rounds x {args.duration:g} s per endpoint after {args.warmup:g} s warm-up"
    )
    print(
        "   p50: median of the rounds' p50; p99: the worst round's p99 (both at saturation);"
        " µs/req: the server processes' CPU time per request"
    )
    print(
        f"   {'endpoint':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'µs/req':>8}"
        f"{'vs trivial':>12}"
    )
    for name, result in results.items():
        print(
            f"   {name:<16}{result.rate:>10,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}{result.errors:>8}"
            f"{result.cpu_us_per_request:>8,.0f}{result.rate / trivial.rate:>12.1%}"
        )
    print()
    print(
        f"2. latency at {rate:,.0f} req/s ({TARGET_RATIO:.0%} of the trivial view's throughput): open loop,"
        f" {args.rounds} interleaved rounds x {args.latency_duration:g} s, from each request's due time"
    )
    print(
        f"   over {args.open_loop_connections} keep-alive connections; µs/req and cores: the server"
        " processes' CPU time per answer and their CPU use"
    )
    print(OPEN_LOOP_HEADER)
    for name in endpoints:
        print_open_loop_row(name, latency_rounds[name])
    print()
    floor_p99 = latencies[FLOOR].percentile(0.99)
    print(
        f"3. machine floor (a control): bench/reference_server.c, {args.workers} processes x one epoll"
        f" loop, burning {burn_us:,.0f} µs of CPU per request (the trivial view's at saturation)"
    )
    print(
        f"   throughput ({saturating}, as in 1.): {floor.throughput.rate:,.0f} req/s,"
        f" {floor.throughput.cpu_us_per_request:,.0f} µs/req; open loop at {floor.rate:,.0f} req/s"
        f" ({TARGET_RATIO:.0%} of that), in the same interleaved rounds as 2.:"
    )
    print(OPEN_LOOP_HEADER)
    print_open_loop_row(FLOOR, latency_rounds[FLOOR])
    print(
        f"   a server spending the trivial view's CPU per request, and no more when less loaded, gets"
        f" p99 {floor_p99:.2f} ms at {TARGET_RATIO:.0%} load on this machine in these rounds"
    )
    print()
    failed = False
    for name in ("resolve", "OFREP single"):
        ratio = results[name].rate / trivial.rate
        p99 = latencies[name].percentile(0.99)
        print(
            f"target: {name} >= {TARGET_RATIO:.0%} of trivial throughput: {ratio:.1%}"
            f" {'met' if ratio >= TARGET_RATIO else 'NOT met'};"
            f" p99 <= {TARGET_P99_MS:g} ms at {rate:,.0f} req/s: {p99:.2f} ms"
            f" {'met' if p99 <= TARGET_P99_MS else 'NOT met'}"
        )
        failed = failed or results[name].errors > 0 or latencies[name].errors > 0
    if failed or trivial.errors or latencies["trivial view"].errors:
        raise SystemExit("some requests failed (see the errors columns)")


if __name__ == "__main__":
    main()
