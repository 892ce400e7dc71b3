"""The small HTTP layer of the client: one request at a time over `http.client`.

The standard library keeps the base package light (no HTTP dependency for services that only
resolve), and `http.client` exposes the socket, which is what lets `close()` interrupt a
stream read from another thread.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import random
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

USER_AGENT = "flagstaff-python/0.1"
# Errors that mean "the server could not be reached or answered garbage", never a bug here.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException, ValueError)
READ_SIZE = 64 * 1024
# A `changes` event is one `data:` line holding the contents it sends: lines may be long, but
# a server that never ends one is not followed forever.
MAX_EVENT_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    """Lower-cased header names."""
    body: bytes


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A control-plane base URL split once: `https://host:port/prefix`."""

    scheme: str
    host: str
    port: int | None
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"))

    def path(self, template: str, **segments: str) -> str:
        """`template` like `/api/v1/environments/{env}/snapshot`, its fields URL-quoted."""
        return self.prefix + template.format(**{k: quote(v, safe="") for k, v in segments.items()})

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def request(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout: float,
) -> Response:
    """Send one request and read the whole answer; raises one of TRANSPORT_ERRORS."""
    connection = endpoint.connect(timeout)
    try:
        connection.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **headers})
        answer = connection.getresponse()
        payload = answer.read()
        answer_headers = {name.lower(): value for name, value in answer.getheaders()}
    finally:
        connection.close()
    if answer_headers.get("content-encoding") == "gzip":
        payload = gzip.decompress(payload)
    return Response(answer.status, answer_headers, payload)


class EventStream:
    """A Server-Sent Events response read event by event; `abort()` is safe from any thread."""

    def __init__(
        self, endpoint: Endpoint, path: str, *, headers: Mapping[str, str], connect_timeout: float
    ) -> None:
        self._connection = endpoint.connect(connect_timeout)
        self._lock = threading.Lock()
        self._aborted = False
        self.status = 0
        self._response: http.client.HTTPResponse | None = None
        self._sock: socket.socket | None = None
        self.retry: float | None = None
        """The server's reconnection delay (the `retry:` field), in seconds."""
        self._path = path
        self._headers = {"User-Agent": USER_AGENT, "Accept": "text/event-stream", **headers}

    def open(self, read_timeout: float) -> int:
        """Send the request; return the status. Reads then time out after `read_timeout` s."""
        with self._lock:
            # Connecting under the lock: an abort() either comes first (and is seen here) or
            # finds the socket to shut down.
            if self._aborted:
                raise ConnectionAbortedError("stream aborted")
            self._connection.connect()
            # Kept: for a response that ends by closing, http.client hands the socket over to
            # the response and forgets it.
            self._sock = self._connection.sock
        self._connection.request("GET", self._path, headers=self._headers)
        self._response = self._connection.getresponse()
        self.status = self._response.status
        if self._sock is not None:
            set_read_timeout(self._sock, read_timeout)
        return self.status

    def events(self) -> Iterator[ServerSentEvent | None]:
        """Yield each dispatched event, and None for every comment line (a keep-alive) and
        every block without an event (such as a lone `retry:`): proof that the stream is alive.

        Reads what has arrived (`read1`: one chunk of the response) and splits it into lines
        itself: a thousand clients in one process receive each change at the same moment, and
        a `readline` per line through http.client's chunked decoding cost twice as much.
        """
        assert self._response is not None, "open() first"
        event, event_id = "message", None
        data: list[str] = []
        unfinished: list[bytes] = []  # the start of a line still arriving
        unfinished_bytes = 0
        while True:
            received = self._response.read1(READ_SIZE)
            if not received:
                return  # the server closed the stream
            if b"\n" not in received:
                unfinished.append(received)
                unfinished_bytes += len(received)
                if unfinished_bytes > MAX_EVENT_LINE_BYTES:
                    raise ValueError(f"an event stream line longer than {MAX_EVENT_LINE_BYTES} bytes")
                continue
            if unfinished:
                unfinished.append(received)
                received = b"".join(unfinished)
            *lines, rest = received.split(b"\n")
            unfinished, unfinished_bytes = ([rest], len(rest)) if rest else ([], 0)
            for raw in lines:
                line = raw.decode("utf-8", errors="replace").removesuffix("\r")
                if not line:
                    yield ServerSentEvent(event, "\n".join(data), event_id) if data or event_id else None
                    event, data, event_id = "message", [], None
                    continue
                if line.startswith(":"):
                    yield None
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id" and "\0" not in value:
                    event_id = value
                elif name == "retry" and value.isascii() and value.isdigit():
                    self.retry = int(value) / 1000

    def abort(self) -> None:
        """Make a blocked or future read fail at once; safe from any thread."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            # shutdown() wakes a thread blocked in recv(); close() alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Release the connection; from the thread that reads."""
        self.abort()
        if self._response is not None:
            self._response.close()
        self._connection.close()
        if self._sock is not None:
            self._sock.close()


def set_read_timeout(sock: socket.socket, seconds: float) -> None:
    """Make reads from `sock` fail after `seconds` without data.

    On Linux the kernel keeps the time (SO_RCVTIMEO, socket(7)) on a blocking socket: a socket
    with a Python timeout polls before every read, so each event cost two system calls and
    two trips of the reading thread through the GIL (released for the poll, taken back,
    released for the read, taken back), each trip a wait whenever the service's other threads
    hold it. A read that times out then fails with EAGAIN, which http.client reports as
    IncompleteRead (one of TRANSPORT_ERRORS) where a Python timeout raised TimeoutError.
    `tests/client/test_http.py` checks both ends of a stream that goes silent.
    """
    if sys.platform != "linux":
        sock.settimeout(seconds)
        return
    whole = int(seconds)
    sock.settimeout(None)
    # struct timeval: two C longs on Linux (time_t and suseconds_t).
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    )


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter: uniform in [½, 1] of min(cap, base·2^attempt)."""
    ceiling = min(cap, base * 2 ** min(attempt, 32))
    return ceiling * random.uniform(0.5, 1.0)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse Retry-After: delta seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
