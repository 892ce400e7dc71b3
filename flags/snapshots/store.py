"""The per-process snapshot store and the revision announcements (Redis: flags.snapshots.redis_link)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable

import redis
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection

from flags.models import Environment
from flags.snapshots.document import (
    Snapshot,
    SnapshotUnavailable,
    UnknownEnvironment,
    compile_snapshot,
    environment_fingerprint,
)
from flags.snapshots.redis_link import make_redis_client, redis_link
from flagstaff.canonical import canonical_json
from flagstaff.engine import DefinitionError

logger = logging.getLogger(__name__)

SNAPSHOT_CACHE_SECONDS = 24 * 60 * 60
REDIS_HEALTH_CHECK_SECONDS = 10
LISTENER_MAX_BACKOFF_SECONDS = 5.0


def snapshot_key(environment: str, revision: int) -> str:
    return f"flagstaff:snapshot:{environment}:{revision}"


def latest_key(environment: str) -> str:
    return f"flagstaff:snapshot:{environment}:latest"


# The store


class SnapshotStore:
    """Per-process snapshots of every environment asked for; thread-safe.

    Reads take no lock: the dicts are only ever replaced item by item, which is atomic in
    CPython. A refresh takes the environment's lock; while one thread refreshes, the others
    keep serving the snapshot they have.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        check_seconds: float | None = None,
        recheck_seconds: float | None = None,
        listen: bool = True,
    ) -> None:
        self.redis_url = settings.REDIS_URL if redis_url is None else redis_url
        self.check_seconds = (
            settings.FLAGSTAFF_REVISION_CHECK_SECONDS if check_seconds is None else check_seconds
        )
        self.recheck_seconds = (
            settings.FLAGSTAFF_REVISION_RECHECK_SECONDS if recheck_seconds is None else recheck_seconds
        )
        self._link = redis_link(self.redis_url) if self.redis_url else None
        self._follows_announcements = listen
        self._snapshots: dict[str, Snapshot] = {}
        self._announced: dict[str, int] = {}
        self._checked_at: dict[str, float] = {}
        self._env_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(threading.Lock())
        self._generation = 0
        self._listening = False
        self._listener: threading.Thread | None = None
        self._listener_pid = 0
        self._stopped = threading.Event()
        self._database_down = False

    # Reading

    def get(self, environment: str) -> Snapshot:
        """The current snapshot; raises UnknownEnvironment or SnapshotUnavailable."""
        self._ensure_listener()
        snapshot = self._snapshots.get(environment)
        if snapshot is not None and not self._stale(environment, snapshot):
            return snapshot
        return self._refresh(environment, snapshot)

    @property
    def listening(self) -> bool:
        """True while the Redis listener is subscribed (invalidation by announcement)."""
        return self._listening

    def wait_for_change(self, environment: str, after: int, timeout: float) -> Snapshot:
        """Block until the environment's revision passes `after`, or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            generation = self._generation
            snapshot = self.get(environment)
            remaining = deadline - time.monotonic()
            if snapshot.revision > after or remaining <= 0:
                return snapshot
            if not self._listening:
                # No announcements from other processes: come back for the next revision check.
                remaining = min(remaining, max(self.check_seconds, 0.05))
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(remaining)

    # Learning about new revisions

    def note_revision(self, environment: str, revision: int) -> None:
        """Record an announced revision; the next read of that environment refreshes."""
        with self._lock:
            if revision <= self._announced.get(environment, -1):
                return
            self._announced[environment] = revision
        self._notify()

    def announced_after(self, environment: str, revision: int) -> bool:
        """True when a revision after `revision` was announced that this store has not loaded
        (the database refused it, say): the reader should try again soon."""
        return self._announced.get(environment, -1) > revision

    def expire_checks(self) -> None:
        """Make the next read of every environment check its revision in the database."""
        with self._lock:
            self._checked_at.clear()

    def cached_snapshot(self, environment: str, revision: int, fingerprint: str) -> Snapshot | None:
        """The snapshot of an earlier revision from the Redis cache, if it is still there."""
        return self._load_cached(environment, revision, fingerprint)

    def clear(self) -> None:
        """Forget every snapshot (tests; an operator's reset)."""
        with self._lock:
            self._snapshots.clear()
            self._announced.clear()
            self._checked_at.clear()
        self._notify()

    def close(self) -> None:
        """Stop the listener thread (it exits within a second; nobody waits for it)."""
        self._stopped.set()
        self._listening = False

    def _notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _stale(self, environment: str, snapshot: Snapshot) -> bool:
        if self._announced.get(environment, -1) > snapshot.revision:
            return True
        interval = self.recheck_seconds if self._listening else self.check_seconds
        return time.monotonic() - self._checked_at.get(environment, float("-inf")) >= interval

    def _refresh(self, environment: str, current: Snapshot | None) -> Snapshot:
        lock = self._env_lock(environment)
        if current is not None:
            if not lock.acquire(blocking=False):
                return current
        else:
            lock.acquire()
        try:
            current = self._snapshots.get(environment)
            if current is not None and not self._stale(environment, current):
                return current
            announced = self._announced.get(environment, -1)
            if current is not None and announced > current.revision:
                # Announced: no need to ask the database which revision is current.
                target, fingerprint = announced, current.fingerprint
            else:
                try:
                    found = self._database_revision(environment)
                except DatabaseError as exc:
                    return self._without_database(environment, current, exc)
                self._checked_at[environment] = time.monotonic()
                if found is None:
                    self._forget(environment)
                    raise UnknownEnvironment(environment)
                target, fingerprint = found
                if current is not None and current.fingerprint != fingerprint:
                    self._forget(environment)
                    current = None
                if current is not None and current.revision >= target:
                    return current
            snapshot = self._load_cached(environment, target, fingerprint)
            if snapshot is None:
                try:
                    snapshot = self._compile(environment)
                except DatabaseError as exc:
                    return self._without_database(environment, current, exc)
                self._save_cached(snapshot)
                self._drop_false_announcement(environment, target, snapshot.revision)
            return self._install(snapshot)
        finally:
            lock.release()

    def _drop_false_announcement(self, environment: str, target: int, compiled: int) -> None:
        """The database is the truth: an announced revision it does not have (another
        deployment on the same Redis, a stray message) must not keep the snapshot stale."""
        with self._lock:
            if self._announced.get(environment, -1) == target > compiled:
                self._announced[environment] = compiled

    def _env_lock(self, environment: str) -> threading.Lock:
        with self._lock:
            lock = self._env_locks.get(environment)
            if lock is None:
                lock = self._env_locks[environment] = threading.Lock()
            return lock

    def _install(self, snapshot: Snapshot) -> Snapshot:
        with self._lock:
            existing = self._snapshots.get(snapshot.environment)
            if (
                existing is None
                or existing.fingerprint != snapshot.fingerprint
                or snapshot.revision >= existing.revision
            ):
                self._snapshots[snapshot.environment] = existing = snapshot
            self._checked_at[snapshot.environment] = time.monotonic()
        self._notify()
        return existing

    def _forget(self, environment: str) -> None:
        with self._lock:
            self._snapshots.pop(environment, None)
            self._announced.pop(environment, None)

    # The database

    def _database_revision(self, environment: str) -> tuple[int, str] | None:
        """The environment's revision and fingerprint: one indexed single-row query."""
        try:
            row = Environment.objects.filter(key=environment).only("pk", "revision", "created_at").first()
        except DatabaseError:
            self._drop_broken_connection()
            raise
        self._database_up()
        return None if row is None else (row.revision, environment_fingerprint(row))

    def _compile(self, environment: str) -> Snapshot:
        try:
            env = Environment.objects.get(key=environment)
            document = compile_snapshot(env)
        except Environment.DoesNotExist:
            self._forget(environment)
            raise UnknownEnvironment(environment) from None
        except DatabaseError:
            self._drop_broken_connection()
            raise
        logger.info(
            "snapshot compiled",
            extra={
                "environment": environment,
                "revision": document["revision"],
                "flags": len(document["flags"]),
            },
        )
        return Snapshot.from_document(document, fingerprint=environment_fingerprint(env))

    def _without_database(self, environment: str, current: Snapshot | None, exc: DatabaseError) -> Snapshot:
        """Keep serving what we have; a process with nothing yet takes the newest one in Redis."""
        self._checked_at[environment] = time.monotonic()
        if not self._database_down:
            self._database_down = True
            logger.warning("database unreachable (%s): serving the last snapshot of each environment", exc)
        if current is not None:
            return current
        snapshot = self._load_latest_cached(environment)
        if snapshot is None:
            raise SnapshotUnavailable(environment) from exc
        return self._install(snapshot)

    def _database_up(self) -> None:
        if self._database_down:
            self._database_down = False
            logger.info("database reachable again: snapshots follow revisions")

    @staticmethod
    def _drop_broken_connection() -> None:
        # Outside a transaction, close the failed connection so the next check reconnects.
        if not connection.in_atomic_block:
            with contextlib.suppress(DatabaseError):
                connection.close()

    # The Redis cache: "<fingerprint>\n<document>" under the revision's key, and
    # "<revision> <fingerprint>" under the environment's `latest` key.

    def _load_cached(self, environment: str, revision: int, fingerprint: str) -> Snapshot | None:
        if self._link is None:
            return None
        value = self._link.get(snapshot_key(environment, revision))
        if value is None:
            return None
        cached_fingerprint, _, body = value.partition(b"\n")
        if cached_fingerprint.decode(errors="replace") != fingerprint:
            return None
        try:
            document = json.loads(body)
            if document.get("revision") != revision or document.get("environment") != environment:
                return None
            return Snapshot.from_document(document, fingerprint=fingerprint, body=body)
        except (ValueError, TypeError, KeyError, AttributeError, DefinitionError) as exc:
            logger.warning(
                "ignored an unreadable cached snapshot", extra={"environment": environment, "error": str(exc)}
            )
            return None

    def _load_latest_cached(self, environment: str) -> Snapshot | None:
        if self._link is None:
            return None
        latest = self._link.get(latest_key(environment))
        if latest is None:
            return None
        revision, _, fingerprint = latest.decode(errors="replace").partition(" ")
        try:
            return self._load_cached(environment, int(revision), fingerprint)
        except ValueError:
            return None

    def _save_cached(self, snapshot: Snapshot) -> None:
        if self._link is not None:
            self._link.set_many(
                {
                    snapshot_key(snapshot.environment, snapshot.revision): (
                        snapshot.fingerprint.encode() + b"\n" + snapshot.body
                    ),
                    latest_key(snapshot.environment): f"{snapshot.revision} {snapshot.fingerprint}",
                },
                seconds=SNAPSHOT_CACHE_SECONDS,
            )

    # The listener

    def _ensure_listener(self) -> None:
        if self._link is None or not self._follows_announcements or self._stopped.is_set():
            return
        pid = os.getpid()
        if self._listener_pid == pid and self._listener is not None:
            return
        with self._lock:
            # After a fork the parent's thread is gone: each process starts its own.
            if self._listener_pid == pid and self._listener is not None:
                return
            self._listening = False
            self._listener_pid = pid
            self._listener = threading.Thread(
                target=self._listen, name="flagstaff-snapshot-listener", daemon=True
            )
            self._listener.start()

    def _listen(self) -> None:
        assert self._link is not None
        delay = 0.1
        while not self._stopped.is_set():
            pubsub = None
            try:
                client = make_redis_client(self._link.url, health_check_interval=REDIS_HEALTH_CHECK_SECONDS)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self._link.channel)
                self._on_subscribed()
                delay = 0.1
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message.get("data"))
                    # A failed call elsewhere marked Redis down, yet this connection works:
                    # it was a blip, and the cache and rate limit may use Redis again.
                    self._link.mark_up()
            except (redis.RedisError, OSError) as exc:
                self._listening = False
                self._link.mark_down(exc)
                self._notify()
            finally:
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()
            self._stopped.wait(delay)
            delay = min(delay * 2, LISTENER_MAX_BACKOFF_SECONDS)
        self._listening = False

    def _on_subscribed(self) -> None:
        assert self._link is not None
        self._link.mark_up()
        with self._lock:
            # Whatever was announced while nobody listened is found by one revision check each.
            self._checked_at.clear()
            self._listening = True
        self._notify()

    def _on_message(self, data: object) -> None:
        try:
            payload = json.loads(data)  # type: ignore[arg-type]
            environment, revision = payload["environment"], int(payload["revision"])
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("ignored a malformed revision announcement", extra={"error": str(exc)})
            return
        if isinstance(environment, str):
            self.note_revision(environment, revision)


_store: SnapshotStore | None = None
_store_lock = threading.Lock()
_store_listens = True


def get_store() -> SnapshotStore:
    """The process's store, created on first use (after a fork, in the worker that uses it)."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                _store = SnapshotStore(listen=_store_listens)
    return _store


def follow_announcements_elsewhere() -> None:
    """The process's store will not subscribe to the announcements itself: its owner does (the
    stream process's hub, one subscription for the process) and passes them on (note_revision)."""
    global _store_listens
    _store_listens = False
    reset_store()


def reset_store() -> None:
    """Drop the process's store (tests: each starts from nothing)."""
    global _store
    with _store_lock:
        if _store is not None:
            _store.close()
        _store = None


def announce_revisions(revisions: Iterable[tuple[str, int]]) -> None:
    """After commit: tell this process's store, and every other process through Redis."""
    link = redis_link()
    for environment, revision in revisions:
        if _store is not None:
            _store.note_revision(environment, revision)
        if link is not None:
            link.publish(canonical_json({"environment": environment, "revision": revision}))
