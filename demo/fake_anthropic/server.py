"""`FakeAnthropic`: the loopback HTTP server, its test-settable state and routing."""

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from demo.fake_anthropic import messages, models, reports
from demo.fake_anthropic.batches import BatchStore
from demo.fake_anthropic.forced_tools import ForcedToolInput, forced_tool_content
from demo.fake_anthropic.scripts import ScriptedReply, Scripts, prompt_text
from demo.fake_anthropic.wire import JSON, ApiError, RecordedRequest

DEFAULT_API_KEY = "sk-ant-api03-fake-key"
DEFAULT_ADMIN_KEY = "sk-ant-admin01-fake-key"
API_VERSIONS = frozenset({"2023-06-01", "2026-10-21"})
BATCHES = "/v1/messages/batches"
DAY_SECONDS = 24 * 3600.0


class JSONLines(list[JSON]):
    """A reply sent as a `.jsonl` body (batch results), not as one JSON document."""


class CutStream(list[messages.Event]):
    """The first events of a stream that stops short; `abrupt`: without the body's end."""

    def __init__(self, events: list[messages.Event], *, abrupt: bool) -> None:
        super().__init__(events)
        self.abrupt = abrupt


class FakeAnthropic:
    """The fake API; its public attributes are state that tests set and read directly."""

    def __init__(self, *, port: int = 0) -> None:
        """`port` 0 picks a free one; the demo passes a fixed port to export a stable base URL."""
        self._port = port
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Restore defaults; forget requests, cached prefixes and scripted failures."""
        with self._lock:
            self.api_keys = {DEFAULT_API_KEY}
            self.admin_keys = {DEFAULT_ADMIN_KEY}
            self.models = models.default_models()
            self.models_page_size: int | None = None  # caps GET /v1/models pages below `limit`
            self.usage_buckets: list[JSON] = []
            self.cost_buckets: list[JSON] = []
            self.reply: str | None = None  # None echoes the last user message
            self.stop_reason: str | None = None  # overrides end_turn / max_tokens
            self.stop_details: JSON | None = None
            self.sparse_usage = False  # omit the optional usage fields
            self.forced_tool_input: ForcedToolInput | None = None  # scripts forced tool calls
            self.latency = 0.0  # seconds slept before answering each request
            self.batch_delay = 0.0  # seconds a batch stays in_progress
            self.batch_ttl = DAY_SECONDS  # a batch not ended by then expires
            self.scripts = Scripts()
            self.batches = BatchStore(self._answer_batched)
            self.requests: list[RecordedRequest] = []
            self._failures: list[tuple[str, ApiError]] = []
            self._stream_errors: list[ApiError] = []
            self._stream_cuts: list[bool] = []
            self._cache = messages.PromptCache()

    def start(self) -> Self:
        self._server = _Server(self, self._port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
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
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        error_type: str | None = None,
        message: str | None = None,
        times: int = 1,
        path: str = "/v1/",
    ) -> None:
        """Answer the next `times` requests whose path starts with `path` with an error."""
        with self._lock:
            self._failures += [
                (path, ApiError(status, message, error_type=error_type, retry_after=retry_after))
                for _ in range(times)
            ]

    def interrupt_next_stream(self, error_type: str = "overloaded_error", message: str | None = None) -> None:
        """End the next streamed message with `event: error` after its first text delta."""
        with self._lock:
            self._stream_errors.append(ApiError(200, message, error_type=error_type))

    def cut_next_stream(self, *, abrupt: bool = False) -> None:
        """End the next streamed message after its first text delta, without `message_stop`: the
        body ends cleanly, or (`abrupt`) the connection closes in the middle of it."""
        with self._lock:
            self._stream_cuts.append(abrupt)

    def script_reply(self, marker: str, text: str, *, stop_reason: str | None = None) -> None:
        """Answer prompts containing `marker` with `text` (and `stop_reason` instead of end_turn)."""
        self.scripts.replies[marker] = ScriptedReply(text, stop_reason)

    def script_verdict(self, marker: str, verdict: JSON) -> None:
        """Answer forced-tool (judge) prompts containing `marker` by calling the tool with `verdict`."""
        self.scripts.verdicts[marker] = verdict

    def times_answered(self, marker: str) -> int:
        """How many answered (billed) messages, direct or batched, had `marker` in their prompt."""
        return self.scripts.count(marker)

    def repeated_prompts(self) -> dict[str, int]:
        """Prompts answered more than once: a test asserts this is empty to rule out double charges."""
        return self.scripts.repeated()

    def _dispatch(self, request: RecordedRequest) -> JSON | JSONLines | list[messages.Event]:
        with self._lock:
            self.requests.append(request)
            failure = next((f for f in self._failures if request.path.startswith(f[0])), None)
            if failure is not None:
                self._failures.remove(failure)
        if self.latency:
            time.sleep(self.latency)
        if failure is not None:
            raise failure[1]
        self._authenticate(request)
        version = request.headers.get("anthropic-version")
        if version is None:
            raise ApiError(400, "anthropic-version: header is required")
        if version not in API_VERSIONS:
            raise ApiError(400, f"anthropic-version: {version!r} is not a valid version")
        match request.method, request.path:
            case "POST", "/v1/messages":
                return self._create_message(request, version)
            case "POST", "/v1/messages/batches":
                return self.batches.create(
                    request, delay=self.batch_delay, ttl=self.batch_ttl, base_url=self.base_url
                )
            case "GET", "/v1/messages/batches":
                return self.batches.page(request.query, base_url=self.base_url)
            case "POST", path if path.startswith(BATCHES + "/") and path.endswith("/cancel"):
                batch_id = path.removeprefix(BATCHES + "/").removesuffix("/cancel")
                return self.batches.cancel(batch_id, base_url=self.base_url)
            case "GET", path if path.startswith(BATCHES + "/") and path.endswith("/results"):
                return JSONLines(
                    self.batches.results(path.removeprefix(BATCHES + "/").removesuffix("/results"))
                )
            case "GET", path if path.startswith(BATCHES + "/"):
                return self.batches.describe(path.removeprefix(BATCHES + "/"), base_url=self.base_url)
            case "DELETE", path if path.startswith(BATCHES + "/"):
                return self.batches.delete(path.removeprefix(BATCHES + "/"))
            case "GET", "/v1/models":
                return models.list_models(self.models, request.query, page_size=self.models_page_size)
            case "GET", path if path.startswith("/v1/models/"):
                return models.find_model(self.models, path.removeprefix("/v1/models/"))
            case "GET", "/v1/organizations/usage_report/messages":
                return reports.report_page(reports.USAGE, self.usage_buckets, request.query)
            case "GET", "/v1/organizations/cost_report":
                return reports.report_page(reports.COST, self.cost_buckets, request.query)
        raise ApiError(404, f"Not found: {request.method} {request.path}")

    def _authenticate(self, request: RecordedRequest) -> None:
        headers = request.headers
        # Admin endpoints take only x-api-key; elsewhere x-api-key wins over a Bearer token.
        if request.path.startswith("/v1/organizations/"):
            key, accepted = headers.get("x-api-key"), self.admin_keys
        else:
            bearer = headers.get("authorization", "").removeprefix("Bearer ")
            key, accepted = headers.get("x-api-key", bearer), self.api_keys
        if not key:
            raise ApiError(401, "x-api-key header is required")
        if key not in accepted:
            raise ApiError(401, "invalid x-api-key")

    def _create_message(self, request: RecordedRequest, version: str) -> JSON | list[messages.Event]:
        body = messages.validate(request, version, self.models)
        message = self._answer(body, service_tier="standard")
        if body.get("stream") is not True:
            return message
        with self._lock:
            stream_error = self._stream_errors.pop(0) if self._stream_errors else None
            cut = self._stream_cuts.pop(0) if self._stream_cuts else None
        events = messages.stream_events(message, stream_error)
        if cut is None:
            return events
        first_delta = next(i for i, event in enumerate(events) if event.name == "content_block_delta")
        return CutStream(events[: first_delta + 1], abrupt=cut)

    def _answer_batched(self, params: JSON, headers: dict[str, str]) -> JSON:
        """Answer one request of a batch, checked as if sent alone with the batch's headers."""
        inner = RecordedRequest("POST", "/v1/messages", {}, headers, params)
        if params.get("stream") is not None:
            raise ApiError(400, "stream: Extra inputs are not permitted in a batch request")
        body = messages.validate(inner, headers["anthropic-version"], self.models)
        return self._answer(body, service_tier="batch")

    def _answer(self, body: JSON, *, service_tier: str) -> JSON:
        prompt = prompt_text(body)
        scripted = self.scripts.reply_for(prompt)
        if scripted is not None:
            text, stop_reason = messages.reply(scripted.text, body)
            stop_reason = scripted.stop_reason or stop_reason
        else:
            text, stop_reason = messages.reply(self.reply, body)
            stop_reason = self.stop_reason or stop_reason
        cache_use = self._cache.account(body["model"], messages.prompt_segments(body))
        usage = messages.usage_body(cache_use, messages.count_tokens(text), sparse=self.sparse_usage)
        if not self.sparse_usage:
            usage["service_tier"] = service_tier
        message = messages.message_body(
            body["model"], text, stop_reason=stop_reason, stop_details=self.stop_details, usage=usage
        )
        # A forced tool (a judge) answers with the tool: the test's callback decides its input,
        # else the verdict scripted for a marker in the prompt; neither → a text answer.
        script = self.forced_tool_input or (lambda _name, _body: self.scripts.verdict_for(prompt))
        forced = forced_tool_content(body, script)
        if forced is not None:
            content, output_tokens = forced
            usage["output_tokens"] = output_tokens
            message |= {"content": content, "stop_reason": "tool_use"}
        self.scripts.answered(prompt)
        return message


class _Server(ThreadingHTTPServer):
    # The listen backlog: socketserver's default of 5 drops the SYNs of a client that opens its
    # connections together (an eval run at concurrency 32), and each dropped one waits out TCP's
    # 1 s retransmission timeout before its first request is even read.
    request_queue_size = 128

    def __init__(self, fake: FakeAnthropic, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the real API: a client reuses its connections instead of paying a TCP
    # connect (and this server a new thread) per request.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; Nagle would hold the body for the client's ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests read `FakeAnthropic.requests` instead."""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw
        request = RecordedRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        request_id = f"req_{secrets.token_hex(12)}"
        try:
            reply = self.server.fake._dispatch(request)
        except ApiError as error:
            headers = {"request-id": request_id, **error.headers}
            self._send_json(error.status, error.error() | {"request_id": request_id}, headers)
            return
        if isinstance(reply, dict):
            self._send_json(200, reply, {"request-id": request_id})
        elif isinstance(reply, JSONLines):
            self._send_lines(reply, request_id)
        else:
            self._send_events(reply, request_id)

    def _send_lines(self, lines: JSONLines, request_id: str) -> None:
        payload = "".join(json.dumps(line) + "\n" for line in lines).encode()
        self.send_response(200)
        self.send_header("content-type", "application/binary")
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", request_id)
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, body: JSON, headers: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_events(self, events: list[messages.Event], request_id: str) -> None:
        # Chunked, an event a chunk, as the API sends them. This server has every event at once,
        # so they go out in one write: a write each cost the benchmark's server a system call
        # and the client a wake-up per event, for the same bytes at the same instant.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", request_id)
        self.end_headers()
        chunks = []
        for event in events:
            data = f"event: {event.name}\ndata: {json.dumps(event.data)}\n\n".encode()
            chunks.append(b"%x\r\n%s\r\n" % (len(data), data))
        if isinstance(events, CutStream) and events.abrupt:
            self.close_connection = True  # the connection closes with the body unfinished
        else:
            chunks.append(b"0\r\n\r\n")
        try:
            self.wfile.write(b"".join(chunks))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading early
