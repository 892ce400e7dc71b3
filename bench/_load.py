"""Open-loop HTTP load at a fixed rate, for latency "at a given load" (bench/openloop.c), and
the reference server that shows the machine's latency floor at that load (bench/reference_server.c).

A closed-loop generator (wrk, a fixed number of connections each sending its next request when
the last answer arrives) measures throughput, but its latencies at saturation only restate the
queue it builds, and a stall hides the requests that would have been sent meanwhile
(coordinated omission). openloop.c sends request i at `start + i / rate` whatever happened
before and times it from that due time. It is C (one thread, epoll) because the generator
shares the machine's cores with the server: a Python generator spent about 0.35 ms of CPU per
request, a third of a core at 1,000 req/s, and so slowed the server it measured.

Both are built here with the machine's C compiler into a temporary directory. Not a benchmark
itself (`make bench` runs bench/bench_*.py only).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(name: str, directory: Path) -> Path:
    """Compile bench/`name`.c into `directory`; the binary's path."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit(f"No C compiler (cc or gcc) to build bench/{name}.c: install gcc.")
    binary = directory / name
    subprocess.run([compiler, "-O2", "-o", str(binary), str(HERE / f"{name}.c")], check=True)
    return binary


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    seconds: float
    latencies: list[float]
    errors: int
    connections: int
    server_cpu: float = 0.0
    """CPU seconds the server's processes spent meanwhile (bench_resolve_http.on_server sets it)."""

    def percentile(self, fraction: float) -> float:
        """The latency (ms) below which `fraction` of the answered requests fall."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000

    @property
    def answered_rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.latencies) * 1000

    @property
    def cpu_us_per_answer(self) -> float:
        return self.server_cpu / max(1, len(self.latencies)) * 1e6

    @property
    def cores(self) -> float:
        """The server's CPU use meanwhile, in cores."""
        return self.server_cpu / self.seconds


def combine(results: list[OpenLoopResult]) -> OpenLoopResult:
    """Rounds together: every latency in one distribution, so p99 is the p99 of all requests."""
    return OpenLoopResult(
        rate=statistics.mean(r.rate for r in results),
        sent=sum(r.sent for r in results),
        seconds=sum(r.seconds for r in results),
        latencies=[latency for r in results for latency in r.latencies],
        errors=sum(r.errors for r in results),
        connections=max(r.connections for r in results),
        server_cpu=sum(r.server_cpu for r in results),
    )


class OpenLoop:
    """The compiled generator; `close()` removes it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="flagstaff-openloop-"))
        self.binary = build("openloop", self.directory)

    def run(
        self,
        port: int,
        head: str,
        body_prefix: str,
        body_suffix: str,
        *,
        rate: float,
        seconds: float,
        connections: int,
    ) -> OpenLoopResult:
        """`rate` requests a second for `seconds` to 127.0.0.1:`port`: the request line and
        headers `head` (without Content-Length), the body `body_prefix open-<i> body_suffix`."""
        head_file = self.directory / "head"
        head_file.write_bytes(head.encode())
        argv = [
            str(self.binary), "127.0.0.1", str(port), f"{rate:.3f}", f"{seconds:g}", str(connections),
            str(head_file), body_prefix, body_suffix,
        ]  # fmt: skip
        output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
        total, answered, errors, span, opened = output[:5]
        latencies = [int(micros) / 1e6 for micros in output[5:]]
        assert len(latencies) == int(answered)
        return OpenLoopResult(
            rate=rate,
            sent=int(total),
            seconds=float(span),
            latencies=latencies,
            errors=int(errors),
            connections=int(opened),
        )

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class ReferenceServer:
    """bench/reference_server.c on `port`: `processes` event loops spending `burn_us` µs of CPU
    per request. The latency floor a server with that per-request cost gets on this machine."""

    def __init__(self, port: int, processes: int, burn_us: float) -> None:
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="flagstaff-reference-"))
        binary = build("reference_server", self.directory)
        argv = [str(binary), str(port), str(processes), f"{burn_us:.1f}"]
        self.process = subprocess.Popen(argv, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit("bench/reference_server did not come up") from None
                time.sleep(0.05)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
