"""`Flagstaff`: resolves flags locally from an environment's snapshot, kept fresh in the background.

One daemon thread follows the environment's change stream (SSE) and applies the changes it
pushes (flagstaff.changes); it fetches the snapshot (`If-None-Match`) only when it cannot apply
them (it missed a revision, or the server asks it to resync), at a jittered moment so that a
fleet does not fetch at once. When the stream fails it polls the snapshot with its ETag, backing
off exponentially with jitter, and tries the stream again.
`resolve` reads one immutable `Snapshot` that the thread swaps in whole, so it takes no lock,
and it never raises because the control plane is unreachable: it serves the last snapshot
(reason STALE) or the caller's default (reason ERROR). client/README.md, "Client".
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from flagstaff import _http
from flagstaff.changes import ChangesNotApplicable, apply_changes
from flagstaff.engine import resolve as resolve_flag
from flagstaff.resolved import (
    FLAG_NOT_FOUND,
    GENERAL,
    INVALID_CONTEXT,
    PARSE_ERROR,
    PROVIDER_NOT_READY,
    FlagUnavailable,
    Reason,
    ResolvedConfig,
    error_result,
    resolved_from,
)
from flagstaff.snapshot import CompiledFlag, Snapshot, SnapshotError
from flagstaff.telemetry import TelemetrySender

if TYPE_CHECKING:
    import anthropic

    from flagstaff.messages import Messages

logger = logging.getLogger(__name__)

SNAPSHOT_PATH = "/api/v1/environments/{env}/snapshot"
STREAM_PATH = "/api/v1/environments/{env}/stream"
ROLLBACK_PATH = "/api/v1/flags/{key}/environments/{env}/rollback/"
# The server names where its stream process listens (docs/serving.md, "The stream process").
STREAM_URL_HEADER = "flagstaff-stream"
# The event format this client asks for; a server that does not know it sends `revision` events.
STREAM_FORMAT = "changes"
# Spread of a snapshot fetch after changes that do not apply (the server's resync events say theirs).
GAP_SPREAD_SECONDS = 1.0
STALE_AFTER_POLL_INTERVALS = 3
STREAM_RETRY_BASE, STREAM_RETRY_CAP = 0.5, 60.0
POLL_RETRY_BASE = 0.5
CATCH_UP_ATTEMPTS = 3

# Why the client fetched the snapshot (`Flagstaff.snapshot_fetches`): `start` (the constructor),
# `poll` (refresh="poll"), `stream_down` (polling while the stream cannot be had), `announced`
# (a `revision` event from a server that does not push changes), `resync` (the server asked),
# and the three ways a pushed change does not apply (flagstaff.changes.Problem).
FetchReason = Literal[
    "start", "poll", "stream_down", "announced", "resync", "gap", "unknown_hash", "malformed"
]
# How change streams ended (`Flagstaff.stream_endings`): `refused` (a status other than 200),
# `error` (a connection that failed or broke), `closed` (the server ended it: its time limit, a
# restart, or a client too slow to keep up).
StreamEnding = Literal["refused", "error", "closed"]


class RollbackRefused(Exception):
    """The control plane refused a rollback: `status` (409: nothing to roll back), `code`, `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _State:
    snapshot: Snapshot | None
    confirmed_at: float | None
    """time.monotonic() when the server last confirmed the snapshot current (None: never)."""
    refresh_failed: bool
    received_at: float | None = None
    """time.time() when this client got the snapshot's revision (None: from a file)."""


class Flagstaff:
    """A local resolver for one environment; see the module docstring."""

    telemetry: TelemetrySender | None
    _cache_path: str | None
    _thread: threading.Thread | None

    def __init__(
        self,
        *,
        url: str,
        token: str,
        environment: str,
        cache_path: str | os.PathLike[str] | None = None,
        refresh: Literal["stream", "poll"] = "stream",
        poll_interval: float = 30.0,
        stale_after: float | None = None,
        timeout: float = 5.0,
        default_configs: Mapping[str, Mapping[str, Any]] | None = None,
        anthropic_client: anthropic.Anthropic | None = None,
        telemetry: bool | TelemetrySender = False,
        sample_rates: Mapping[str, float] | None = None,
    ) -> None:
        """Load `cache_path` if it holds this environment, fetch once (at most `timeout` s),
        then refresh in a daemon thread. Never raises because the server is unreachable.

        `stale_after` (default 3 * `poll_interval`): how long a snapshot the server has not
        confirmed stays fresh. `telemetry=True` sends call records to the same server.
        """
        if refresh not in ("stream", "poll"):
            raise ValueError("refresh must be 'stream' or 'poll'")
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive")
        self._endpoint = _http.Endpoint.parse(url)
        self._setup(
            environment=environment,
            default_configs=default_configs,
            anthropic_client=anthropic_client,
            sample_rates=sample_rates,
        )
        self._cache_path = None if cache_path is None else os.fspath(cache_path)
        self._refresh = refresh
        self._poll_interval = poll_interval
        self._stale_after = stale_after or STALE_AFTER_POLL_INTERVALS * poll_interval
        self._timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"}
        if telemetry is True:
            self.telemetry = TelemetrySender(url, token, timeout=timeout)
            self._owns_telemetry = True
        elif telemetry is not False:
            self.telemetry = telemetry
        if self._cache_path is not None:
            self._bootstrap(self._cache_path)
        self._fetch("start")
        self._thread = threading.Thread(
            target=self._run, name=f"flagstaff-refresh-{environment}", daemon=True
        )
        self._thread.start()

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        default_configs: Mapping[str, Mapping[str, Any]] | None = None,
        anthropic_client: anthropic.Anthropic | None = None,
        telemetry: TelemetrySender | None = None,
        sample_rates: Mapping[str, float] | None = None,
    ) -> Self:
        """Resolve offline from a snapshot file; never refreshed, never STALE.

        Raises OSError or SnapshotError when the file cannot be read: the caller asked for it.
        """
        snapshot = Snapshot.load(path)
        self = cls.__new__(cls)
        self._setup(
            environment=snapshot.environment,
            default_configs=default_configs,
            anthropic_client=anthropic_client,
            sample_rates=sample_rates,
        )
        self._offline = True
        self.telemetry = telemetry
        self._install(snapshot, persist=False)
        return self

    def _setup(
        self,
        *,
        environment: str,
        default_configs: Mapping[str, Mapping[str, Any]] | None,
        anthropic_client: anthropic.Anthropic | None,
        sample_rates: Mapping[str, float] | None,
    ) -> None:
        self.environment = environment
        self.anthropic_client = anthropic_client
        self.sample_rates: Mapping[str, float] = dict(sample_rates or {})
        self.telemetry = None
        self._owns_telemetry = False
        self._default_configs = {key: dict(value) for key, value in (default_configs or {}).items()}
        self._offline = False
        self._state = _State(None, None, refresh_failed=False)
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: _http.EventStream | None = None
        self._stream_url: str | None = None
        self._streaming = False
        self._thread = None
        self._messages: Messages | None = None
        self._cache_path = None
        self._fetches: Counter[FetchReason] = Counter()
        self._stream_endings: Counter[StreamEnding] = Counter()

    # Reading ---------------------------------------------------------------------------------

    def resolve(
        self,
        flag: str,
        context: Mapping[str, object] | None = None,
        *,
        default: Mapping[str, Any] | None = None,
    ) -> ResolvedConfig:
        """Resolve `flag` for `context`. Never raises; `default` (else the constructor's
        `default_configs[flag]`) is the content when the flag serves nothing or cannot resolve.
        """
        state = self._state  # one read: the snapshot and its freshness belong together
        if default is None:
            default = self._default_configs.get(flag)
        snapshot = state.snapshot
        if snapshot is None:
            return error_result(
                flag, default, PROVIDER_NOT_READY, "no snapshot yet: the control plane was not reached"
            )
        compiled = snapshot.flags.get(flag)
        if compiled is None:
            return error_result(
                flag, default, FLAG_NOT_FOUND, f"flag {flag!r} is not in {snapshot.environment}"
            )
        if compiled.definition is None:
            return error_result(flag, default, PARSE_ERROR, compiled.error or "flag does not compile")
        if context is None:
            context = {}
        elif not isinstance(context, Mapping):
            return error_result(flag, default, INVALID_CONTEXT, "context must be a mapping")
        try:
            resolution = resolve_flag(compiled.definition, context)
        except Exception as error:  # resolve must never raise into the caller
            logger.exception("resolving %s failed", flag)
            return error_result(flag, default, GENERAL, f"resolution failed: {error!r}")
        reason: Reason = resolution.reason
        if not self._offline and _is_stale(state, self._stale_after):
            reason = "STALE"
        if resolution.value_version is None:  # the content is the caller's default: not shared
            return resolved_from(compiled, snapshot, resolution, reason, None, default)
        key = (resolution[:5], reason)
        resolved = compiled.outcomes.get(key)
        # An unchanged flag is shared by the snapshots a pushed change makes: its answers made
        # for an earlier revision are made again.
        if resolved is None or resolved.revision != snapshot.revision:
            served = compiled.contents.get(resolution.value_version)
            if served is None:
                message = f"version {resolution.value_version} of {flag!r} has no content in the snapshot"
                return error_result(flag, default, PARSE_ERROR, message)
            # Frozen, so one instance serves every unit with this outcome (a racing thread at
            # worst builds an equal one).
            resolved = compiled.outcomes[key] = resolved_from(compiled, snapshot, resolution, reason, *served)
        return resolved

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot being served (None before any was loaded)."""
        return self._state.snapshot

    @property
    def revision(self) -> int | None:
        snapshot = self._state.snapshot
        return None if snapshot is None else snapshot.revision

    @property
    def revision_received_at(self) -> datetime | None:
        """When this client got the revision it serves (None: none yet, or read from a file)."""
        received = self._state.received_at
        return None if received is None else datetime.fromtimestamp(received, UTC)

    @property
    def streaming(self) -> bool:
        """True while the change stream is open (answered 200) and followed."""
        return self._streaming

    @property
    def snapshot_fetches(self) -> dict[FetchReason, int]:
        """How many times this client fetched the snapshot, by reason (`FetchReason`): with
        pushed changes, a fleet fetches only to start and when a change could not be applied."""
        return dict(self._fetches)

    @property
    def stream_endings(self) -> dict[StreamEnding, int]:
        """How many of this client's change streams ended, by how (`StreamEnding`)."""
        return dict(self._stream_endings)

    @property
    def stale(self) -> bool:
        """True when resolutions are served with reason STALE."""
        return not self._offline and _is_stale(self._state, self._stale_after)

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Block until the served snapshot's revision is at least `revision`; False on timeout."""

        def reached() -> bool:
            held = self.revision
            return held is not None and held >= revision

        with self._changed:
            return self._changed.wait_for(reached, timeout)

    @property
    def messages(self) -> Messages:
        """`fs.messages.create(flag=..., ...)`: Claude calls with resolved configs and telemetry."""
        if self._messages is None:
            if self.anthropic_client is None:
                raise RuntimeError("pass anthropic_client=anthropic.Anthropic(...) to use fs.messages")
            from flagstaff.messages import Messages

            self._messages = Messages(self, self.anthropic_client)
        return self._messages

    # Acting ----------------------------------------------------------------------------------

    def rollback(self, flag: str, *, reason: str, environment: str | None = None) -> dict[str, Any]:
        """Take `flag`'s candidate off traffic now, in this client's environment (or
        `environment`), through the control plane's one-motion rollback (the same as its Roll
        back button): needs a token with the `write` scope. Returns the server's account of what
        was done (`motion`, `summary`, `revision_after`, `incident`, ...); raises
        RollbackRefused when the server refuses (nothing to roll back: status 409) and one of
        OSError, http.client.HTTPException when it cannot be reached.
        """
        if self._offline:
            raise RuntimeError("a client made from a file has no control plane to roll back through")
        path = self._endpoint.path(ROLLBACK_PATH, key=flag, env=environment or self.environment)
        answer = _http.request(
            self._endpoint,
            "POST",
            path,
            headers={**self._auth, "Content-Type": "application/json", "Accept": "application/json"},
            body=json.dumps({"reason": reason}).encode(),
            timeout=self._timeout,
        )
        try:
            document = json.loads(answer.body) if answer.body else {}
        except ValueError:
            document = {}
        if answer.status != 200 or not isinstance(document, dict):
            detail = document.get("detail") if isinstance(document, dict) else None
            code = document.get("code") if isinstance(document, dict) else None
            raise RollbackRefused(answer.status, str(code or "error"), str(detail or answer.body[:200]))
        return document

    # Lifecycle -------------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop refreshing, and flush and stop the telemetry sender this client created."""
        self._stopped.set()
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.abort()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._owns_telemetry and self.telemetry is not None:
            self.telemetry.close(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # Refreshing (the daemon thread) ----------------------------------------------------------

    def _bootstrap(self, path: str) -> None:
        try:
            snapshot = Snapshot.load(path)
        except FileNotFoundError:
            return
        except (OSError, SnapshotError) as error:
            logger.warning("ignoring snapshot cache %s: %s", path, error)
            return
        if snapshot.environment != self.environment:
            logger.warning("ignoring snapshot cache %s: it holds %s", path, snapshot.environment)
            return
        # Not confirmed by the server: served as STALE until a refresh succeeds.
        self._state = _State(snapshot, None, refresh_failed=False)
        self._notify()

    def _run(self) -> None:
        stream_failures = 0
        while not self._stopped.is_set():
            try:
                if self._refresh == "poll":
                    # The constructor has just fetched: wait before the first poll.
                    first = self._poll_interval if not self._state.refresh_failed else POLL_RETRY_BASE
                    self._poll_until(math.inf, "poll", first_delay=first)
                    continue
                healthy, retry_hint = self._follow_stream()
                stream_failures = 0 if healthy else stream_failures + 1
                delay = _http.backoff_delay(stream_failures, base=STREAM_RETRY_BASE, cap=STREAM_RETRY_CAP)
                if stream_failures > 1:
                    # The stream is down, not just broken once: poll meanwhile, from a random
                    # moment of the wait, so that a fleet that lost its streams together (a
                    # stream process restarted, overloaded) does not fetch together.
                    self._poll_until(
                        time.monotonic() + delay, "stream_down", first_delay=random.uniform(0, delay)
                    )
                elif stream_failures:
                    # Once: the next stream resumes from the revision held (Last-Event-ID) and
                    # the server sends what changed meanwhile, so no snapshot is fetched.
                    self._stopped.wait(delay)
                else:
                    # A stream that ended normally (the server's time limit, a restart): come
                    # back after the delay the server asked for, if any.
                    self._stopped.wait(max(delay, min(retry_hint or 0.0, STREAM_RETRY_CAP)))
            except Exception:
                # A bug here must not end refreshing for the life of the process.
                logger.exception("snapshot refresh failed unexpectedly")
                self._stopped.wait(self._poll_interval)

    def _poll_until(self, deadline: float, reason: FetchReason, *, first_delay: float = 0.0) -> None:
        failures = 0
        self._stopped.wait(min(first_delay, max(0.0, deadline - time.monotonic())))
        while not self._stopped.is_set() and time.monotonic() < deadline:
            if self._fetch(reason):
                failures, delay = 0, self._poll_interval
            else:
                base = min(POLL_RETRY_BASE, self._poll_interval)
                delay = _http.backoff_delay(failures, base=base, cap=self._poll_interval)
                failures += 1
            self._stopped.wait(max(0.0, min(delay, deadline - time.monotonic())))

    def _follow_stream(self) -> tuple[bool, float | None]:
        """Read the change stream until it ends.

        Returns whether it was up and delivered something, and the server's `retry:` delay.
        """
        headers = dict(self._auth)
        if (snapshot := self._state.snapshot) is not None:
            headers["Last-Event-ID"] = str(snapshot.revision)
        endpoint, path = self._endpoint, self._endpoint.path(STREAM_PATH, env=self.environment)
        if self._stream_url is not None:
            endpoint = _http.Endpoint.parse(self._stream_url)
            path = endpoint.prefix
        stream = _http.EventStream(
            endpoint, f"{path}?format={STREAM_FORMAT}", headers=headers, connect_timeout=self._timeout
        )
        with self._stream_lock:
            if self._stopped.is_set():
                return False, None
            self._stream = stream
        healthy = False
        try:
            status = stream.open(read_timeout=self._stale_after)
            if status != 200:
                self._stream_endings["refused"] += 1
                logger.warning(
                    "change stream of %s answered %s; polling while it does", self.environment, status
                )
                return False, None
            self._streaming = True
            # Whatever changed while disconnected comes first: the server compares the revision
            # held (Last-Event-ID) with its own and sends changes, a resync or the revision.
            announced, attempted, retry_at = -1, -2, 0.0
            for event in stream.events():
                healthy = True
                if event is not None and event.event in ("changes", "resync"):
                    self._on_pushed(event)
                    continue
                if event is not None and event.event == "revision":
                    announced = max(announced, _announced_revision(event) or -1)
                held = self.revision
                if held is not None and announced <= held:
                    self._confirm()
                elif announced > attempted or time.monotonic() >= retry_at:
                    # A newer revision: fetch it, retrying a few times in case the server that
                    # answers has not seen it yet; until then the snapshot is not confirmed, and
                    # keep-alives retry at most once a poll interval.
                    attempted = announced
                    self._catch_up(announced, "announced")
                    retry_at = time.monotonic() + self._poll_interval
            self._stream_endings["closed"] += 1
        except _http.TRANSPORT_ERRORS as error:
            if not self._stopped.is_set():
                self._stream_endings["error"] += 1
                logger.info("change stream of %s ended: %r", self.environment, error)
        finally:
            self._streaming = False
            with self._stream_lock:
                self._stream = None
            stream.close()
        return healthy, stream.retry

    def _on_pushed(self, event: _http.ServerSentEvent) -> None:
        """Apply a `changes` event, or fetch the snapshot (once, at a jittered moment) when it
        does not apply or the event is a `resync`."""
        revision = _announced_revision(event)
        held = self._state.snapshot
        spread = GAP_SPREAD_SECONDS
        reason: FetchReason = "resync"
        if event.event == "changes" and held is not None:
            if revision is not None and revision <= held.revision:
                self._confirm()
                return
            try:
                self._install(apply_changes(held, event.data), persist=self._cache_path is not None)
                return
            except ChangesNotApplicable as error:
                logger.info("changes to %s not applied (%s): %s", self.environment, error.problem, error)
                reason = error.problem
        elif event.event == "resync":
            spread = _resync_spread(event.data)
        # Not confirmed until the fetch: resolutions turn STALE if it takes too long.
        self._stopped.wait(random.uniform(0.0, spread))
        self._catch_up(-1 if revision is None else revision, reason)

    def _catch_up(self, revision: int, reason: FetchReason) -> None:
        for attempt in range(CATCH_UP_ATTEMPTS):
            if not self._fetch(reason) or (self.revision or -1) >= revision:
                return
            self._stopped.wait(_http.backoff_delay(attempt, base=0.1, cap=1.0))

    def _fetch(self, reason: FetchReason) -> bool:
        """Fetch the snapshot (conditionally when one is held); True when the server answered."""
        self._fetches[reason] += 1
        held = self._state.snapshot
        headers = {**self._auth, "Accept": "application/json", "Accept-Encoding": "gzip"}
        if held is not None and held.etag is not None:
            headers["If-None-Match"] = held.etag
        path = self._endpoint.path(SNAPSHOT_PATH, env=self.environment)
        try:
            response = _http.request(self._endpoint, "GET", path, headers=headers, timeout=self._timeout)
        except _http.TRANSPORT_ERRORS as error:
            return self._fail(f"snapshot fetch failed: {error!r}")
        self._stream_url = response.headers.get(STREAM_URL_HEADER) or None
        if response.status == 304 and held is not None:
            self._confirm()
            return True
        if response.status != 200:
            return self._fail(f"snapshot fetch answered {response.status}")
        try:
            snapshot = Snapshot.parse(response.body, etag=response.headers.get("etag"))
        except SnapshotError as error:
            return self._fail(f"unusable snapshot: {error}")
        if snapshot.environment != self.environment:
            return self._fail(f"the server sent a snapshot of {snapshot.environment!r}")
        self._install(snapshot, persist=self._cache_path is not None)
        return True

    def _install(self, snapshot: Snapshot, *, persist: bool) -> None:
        previous = self._state.snapshot
        if previous is not None and previous.revision == snapshot.revision:
            received = self._state.received_at
        else:
            received = time.time()
        self._state = _State(snapshot, time.monotonic(), refresh_failed=False, received_at=received)
        self._notify()
        if previous is None or previous.revision != snapshot.revision:
            logger.info("serving %s revision %s", snapshot.environment, snapshot.revision)
        if persist and self._cache_path is not None:
            try:
                snapshot.save(self._cache_path)
            except OSError as error:
                logger.warning("could not write snapshot cache %s: %s", self._cache_path, error)

    def _confirm(self) -> None:
        state = self._state
        if state.refresh_failed:
            logger.info("control plane reachable again for %s", self.environment)
        self._state = _State(
            state.snapshot, time.monotonic(), refresh_failed=False, received_at=state.received_at
        )

    def _fail(self, message: str) -> bool:
        state = self._state
        if not state.refresh_failed:
            logger.warning("%s (%s); serving the last snapshot", message, self.environment)
        self._state = _State(
            state.snapshot, state.confirmed_at, refresh_failed=True, received_at=state.received_at
        )
        return False

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()


def _is_stale(state: _State, stale_after: float) -> bool:
    if state.refresh_failed or state.confirmed_at is None:
        return True
    return time.monotonic() - state.confirmed_at > stale_after


def _resync_spread(data: str) -> float:
    """The `spread` of a resync event (seconds over which the fleet should fetch), bounded."""
    try:
        spread = json.loads(data).get("spread")
    except (ValueError, AttributeError):
        return GAP_SPREAD_SECONDS
    if type(spread) not in (int, float) or not math.isfinite(spread):
        return GAP_SPREAD_SECONDS
    return min(max(float(spread), 0.0), STREAM_RETRY_CAP)


def _announced_revision(event: _http.ServerSentEvent) -> int | None:
    """The revision an event announces: its id, else `{"revision": N}` in its data."""
    for candidate in (event.id, event.data):
        if candidate is None:
            continue
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            value = value.get("revision")
        if type(value) is int:
            return value
    return None


__all__ = [
    "FLAG_NOT_FOUND",
    "GENERAL",
    "INVALID_CONTEXT",
    "PARSE_ERROR",
    "PROVIDER_NOT_READY",
    "CompiledFlag",
    "FlagUnavailable",
    "Flagstaff",
    "Reason",
    "ResolvedConfig",
]
