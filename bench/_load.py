"""Open-loop HTTP load at a fixed rate, for latency "at a given load".

A closed-loop generator (wrk, a fixed number of connections each sending its next request when
the last answer arrives) measures throughput, but its latencies at saturation only restate the
queue it builds, and a stall hides the requests that would have been sent meanwhile
(coordinated omission). Here request i is due at `start + i / rate` whatever happened before,
and its latency runs from that due time to the last byte of its answer: a stall counts against
every request it delays. Keep-alive connections come from a pool (opened before the clock
starts, grown when every one is busy). HTTP/1.1 with Content-Length answers only, which is what
Django's CommonMiddleware gives.

Not a benchmark itself (`make bench` runs bench/bench_*.py only).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass

CONNECT_TIMEOUT_SECONDS = 5.0
ANSWER_TIMEOUT_SECONDS = 10.0


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    seconds: float
    latencies: list[float]
    errors: int
    connections: int

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


def combine(results: list[OpenLoopResult]) -> OpenLoopResult:
    """Rounds together: every latency in one distribution, so p99 is the p99 of all requests."""
    return OpenLoopResult(
        rate=statistics.mean(r.rate for r in results),
        sent=sum(r.sent for r in results),
        seconds=sum(r.seconds for r in results),
        latencies=[latency for r in results for latency in r.latencies],
        errors=sum(r.errors for r in results),
        connections=max(r.connections for r in results),
    )


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Pool:
    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        self.opened = 0

    async def open(self) -> Connection:
        self.opened += 1
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_SECONDS)

    async def fill(self, count: int) -> None:
        for _ in range(count):
            self.idle.put_nowait(await self.open())

    async def take(self) -> Connection:
        if self.idle.empty() and self.opened < self.limit:
            return await self.open()
        return await self.idle.get()

    def give_back(self, connection: Connection) -> None:
        self.idle.put_nowait(connection)

    def close_all(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def _exchange(connection: Connection, request: bytes) -> tuple[int, bool]:
    """Send one request and read its answer: (status, whether the connection may be reused)."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
    }
    await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("connection", "").lower() != "close"


async def _open_loop(
    host: str,
    port: int,
    request_for: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int,
    max_connections: int,
) -> OpenLoopResult:
    loop = asyncio.get_running_loop()
    pool = _Pool(host, port, max_connections)
    await pool.fill(connections)
    latencies: list[float] = []
    errors = 0

    async def one(number: int, due: float) -> None:
        nonlocal errors
        request = request_for(number)
        connection = await pool.take()
        try:
            try:
                status, reusable = await asyncio.wait_for(
                    _exchange(connection, request), ANSWER_TIMEOUT_SECONDS
                )
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection: send again on a new one.
                connection[1].close()
                connection = await pool.open()
                status, reusable = await asyncio.wait_for(
                    _exchange(connection, request), ANSWER_TIMEOUT_SECONDS
                )
        except (
            OSError,
            asyncio.IncompleteReadError,
            ValueError,
            KeyError,
            IndexError,
        ):  # TimeoutError is an OSError
            connection[1].close()
            errors += 1
            return
        latencies.append(loop.time() - due)
        if status != 200:
            errors += 1
        if reusable:
            pool.give_back(connection)
        else:
            connection[1].close()

    total = int(rate * seconds)
    tasks: list[asyncio.Task[None]] = []
    start = loop.time()
    sent = 0
    while sent < total:
        now = loop.time()
        while sent < total and start + sent / rate <= now:
            tasks.append(asyncio.create_task(one(sent, start + sent / rate)))
            sent += 1
        if sent < total:
            await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    pool.close_all()
    return OpenLoopResult(
        rate=rate,
        sent=sent,
        seconds=elapsed,
        latencies=latencies,
        errors=errors,
        connections=pool.opened,
    )


def open_loop(
    host: str,
    port: int,
    request_for: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    connections: int = 16,
    max_connections: int = 256,
) -> OpenLoopResult:
    """Send `rate` requests a second for `seconds`, request i being `request_for(i)`."""
    return asyncio.run(_open_loop(host, port, request_for, rate, seconds, connections, max_connections))
