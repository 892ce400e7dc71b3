"""A stdlib fake of the control plane's client-facing endpoints, on loopback.

Serves what the `flagstaff` client talks to, in the shapes of docs/serving.md and issue 4:
- `GET /api/v1/environments/{env}/snapshot` with `ETag: "<env>:<revision>"` and 304;
- `GET /api/v1/environments/{env}/stream`: SSE `event: revision` / `id: <revision>`,
  keep-alive comments, resumption from `Last-Event-ID`, and the events a test pushes (`push`);
- `POST /api/v1/telemetry/calls`: `{"records": [...]}` (gzip accepted), scripted failures.
Tests change its state (`set_flag`, `fail_snapshot`, `stream_status`, ...) and read what it
received (`requests`, `telemetry_batches`).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from flagstaff import Flagstaff

TOKEN = "fs-test-resolve-token"
ENVIRONMENT = "production"
JSON = dict[str, Any]
MakeClient = Callable[..., Flagstaff]


def unreachable_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def content(version: int, **extra: Any) -> JSON:
    """A config content whose `max_tokens` encodes the version, so tests can cross-check."""
    return {"model": "claude-sonnet-5-5", "max_tokens": 100 + version, **extra}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    status: int


class FakeControlPlane:
    def __init__(self, *, environment: str = ENVIRONMENT, token: str = TOKEN) -> None:
        self.environment = environment
        self.token = token
        self._condition = threading.Condition()
        self.revision = 1
        self.flags: dict[str, JSON] = {}
        self.segments: dict[str, JSON] = {}
        self.contents: dict[str, JSON] = {}
        self.requests: list[Seen] = []
        self.telemetry_batches: list[list[JSON]] = []
        self.telemetry_headers: list[dict[str, str]] = []
        self.telemetry_answer: JSON = {}
        self.stream_status = 200
        self.keepalive_interval = 0.05
        self.retry_ms: int | None = None  # the stream's `retry:` hint, when set
        self.on_telemetry: Callable[[], None] | None = None  # runs before each telemetry answer
        self._snapshot_failures: list[int] = []
        self._telemetry_failures: list[tuple[int, dict[str, str]]] = []
        self._stream_generation = 0
        self._pushed: list[bytes] = []
        self.revision_events = True  # False: new revisions only through pushed events
        self._stopping = False
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port, or on the previous one when restarting after `stop()`."""
        self._stopping = False
        self._server = _Server(self, self._port)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end open streams; the port is released."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._port, "never started"
        return f"http://127.0.0.1:{self._port}"

    # State -----------------------------------------------------------------------------------

    def set_flag(
        self,
        key: str,
        *,
        version: int | None = 1,
        contents: dict[int, JSON] | None = None,
        enabled: bool = True,
        rules: list[JSON] | None = None,
        rollout: JSON | None = None,
        surface: str = "chat",
        raw: JSON | None = None,
    ) -> int:
        """Add or replace a flag (its contents default to `content(v)`); bump the revision."""
        contents = contents or ({} if version is None else {version: content(version)})
        versions = {}
        for number, body in contents.items():
            content_hash = f"sha256:{key}:{number}:{json.dumps(body, sort_keys=True)}"
            self.contents[content_hash] = body
            versions[str(number)] = content_hash
        flag = raw or {
            "key": key,
            "enabled": enabled,
            "version": version,
            "stickiness": "targetingKey",
            "surface": surface,
            "rules": rules or [],
            "rollout": rollout,
            "experiment": None,
            "versions": versions,
        }
        return self._change(lambda: self.flags.__setitem__(key, flag))

    def push(self, event: str, data: JSON | str, event_id: int) -> None:
        """Send an event to every open stream (as the stream process pushes changes)."""
        text = data if isinstance(data, str) else json.dumps(data)
        with self._condition:
            self._pushed.append(f"event: {event}\nid: {event_id}\ndata: {text}\n\n".encode())
            self._condition.notify_all()

    def bump(self) -> int:
        return self._change(lambda: None)

    def _change(self, apply: Callable[[], None]) -> int:
        with self._condition:
            apply()
            self.revision += 1
            self._condition.notify_all()
            return self.revision

    def document(self) -> JSON:
        with self._condition:
            return {
                "format": 1,
                "environment": self.environment,
                "revision": self.revision,
                "generated_at": "2026-11-25T19:40:00Z",
                "segments": dict(self.segments),
                "flags": dict(self.flags),
                "contents": dict(self.contents),
            }

    def fail_snapshot(self, status: int, *, times: int = 1) -> None:
        with self._condition:
            self._snapshot_failures += [status] * times

    def fail_telemetry(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        with self._condition:
            self._telemetry_failures += [(status, headers)] * times

    def drop_streams(self) -> None:
        """End every open stream, as a restarting server would."""
        with self._condition:
            self._stream_generation += 1
            self._condition.notify_all()

    def seen(self, path_end: str) -> list[Seen]:
        with self._condition:
            return [seen for seen in self.requests if seen.path.endswith(path_end)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until `predicate` (called under the fake's lock) holds after some request."""
        with self._condition:
            return self._condition.wait_for(predicate, timeout)

    # Endpoints (called from handler threads) -------------------------------------------------

    def _record(self, handler: _Handler, status: int) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._condition:
            self.requests.append(Seen(handler.command, handler.path.partition("?")[0], headers, status))
            self._condition.notify_all()

    def _snapshot(self, handler: _Handler) -> None:
        with self._condition:
            failure = self._snapshot_failures.pop(0) if self._snapshot_failures else None
        if failure is not None:
            self._record(handler, failure)
            handler.send_json(failure, {"code": "unavailable"})
            return
        document = self.document()
        etag = f'"{self.environment}:{document["revision"]}"'
        # Each request is recorded before it is answered: a client that has its answer finds it
        # in `requests`.
        if handler.headers.get("If-None-Match") == etag:
            self._record(handler, 304)
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.end_headers()
            return
        self._record(handler, 200)
        handler.send_json(200, document, {"ETag": etag})

    def _stream(self, handler: _Handler) -> None:
        with self._condition:
            generation = self._stream_generation  # before the request is seen: drop_streams races
            pushed = len(self._pushed)
        status = self.stream_status
        self._record(handler, status)
        if status != 200:
            handler.send_json(status, {"code": "unavailable"})
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        last_id = handler.headers.get("Last-Event-ID")
        sent = int(last_id) if last_id and last_id.isdigit() else -1
        try:
            handler.write(
                b": connected\n\n" if self.retry_ms is None else f"retry: {self.retry_ms}\n\n".encode()
            )
            while True:
                with self._condition:
                    if (
                        not self._stopping
                        and self._stream_generation == generation
                        and self.revision <= sent
                        and len(self._pushed) == pushed
                    ):
                        self._condition.wait(self.keepalive_interval)
                    if self._stopping or self._stream_generation != generation:
                        return
                    revision = self.revision
                    events, pushed = self._pushed[pushed:], len(self._pushed)
                for event in events:
                    handler.write(event)
                if revision > sent and not self.revision_events:
                    sent = revision
                elif revision > sent:
                    data = json.dumps({"environment": self.environment, "revision": revision})
                    handler.write(f"event: revision\nid: {revision}\ndata: {data}\n\n".encode())
                    sent = revision
                else:
                    handler.write(b": keep-alive\n\n")
        except OSError:
            return  # the client went away

    def _telemetry(self, handler: _Handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.on_telemetry is not None:
            self.on_telemetry()
        with self._condition:
            failure = self._telemetry_failures.pop(0) if self._telemetry_failures else None
            if failure is None:
                self.telemetry_batches.append(json.loads(body)["records"])
                self.telemetry_headers.append({k.lower(): v for k, v in handler.headers.items()})
        if failure is not None:
            self._record(handler, failure[0])
            handler.send_json(failure[0], {"code": "failed"}, failure[1])
            return
        records = self.telemetry_batches[-1]
        self._record(handler, 200)
        handler.send_json(
            200, {"accepted": len(records), "duplicate": 0, "rejected": []} | self.telemetry_answer
        )

    @property
    def telemetry_records(self) -> list[JSON]:
        with self._condition:
            return [record for batch in self.telemetry_batches for record in batch]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeControlPlane, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `FakeControlPlane.requests`."""

    def do_GET(self) -> None:
        fake = self.server.fake
        if not self._authorised():
            return
        prefix = f"/api/v1/environments/{fake.environment}/"
        if self.path == prefix + "snapshot":
            fake._snapshot(self)
        elif self.path.partition("?")[0] == prefix + "stream":
            fake._stream(self)
        else:
            fake._record(self, 404)
            self.send_json(404, {"code": "not_found"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        if self.path == "/api/v1/telemetry/calls":
            self.server.fake._telemetry(self)
        else:
            self.server.fake._record(self, 404)
            self.send_json(404, {"code": "not_found"})

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.server.fake.token}":
            return True
        self.server.fake._record(self, 401)
        self.send_json(401, {"code": "not_authenticated"})
        return False

    def send_json(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
