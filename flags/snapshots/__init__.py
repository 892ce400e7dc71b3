"""Environment snapshots: compiled once per revision, served from memory, invalidated everywhere.

`compile_snapshot` turns an environment into the document of docs/serving.md. A process keeps
one `SnapshotStore` (`get_store()`): per environment the document, its canonical bytes, its
ETag and the compiled engine objects, so a resolve costs no query and no compilation while the
snapshot is current. Staleness is learnt three ways:

- every revision bump announces `{environment, revision}` after commit (`announce_revisions`):
  to this process directly, and to every other process on a Redis pub/sub channel that one
  listener thread per process follows;
- without a listening Redis (not configured, or down), a cheap `SELECT revision` at most once
  per `FLAGSTAFF_REVISION_CHECK_SECONDS` per environment;
- with Redis up, the same check every `FLAGSTAFF_REVISION_RECHECK_SECONDS` as a safety net,
  since pub/sub delivers at most once.

Compiled documents are cached in Redis under `flagstaff:snapshot:<env>:<revision>`, so a fresh
process loads them instead of compiling. When the database is unreachable the last snapshot
keeps serving; a process that has none yet falls back to the newest one in Redis.
"""

from flags.snapshots.document import (
    SECRET_PLACEHOLDER,
    Served,
    ServedFlag,
    ServedVersion,
    Snapshot,
    SnapshotUnavailable,
    UnknownEnvironment,
    UnknownFlag,
    UnservableFlag,
    compile_snapshot,
    environment_fingerprint,
)
from flags.snapshots.redis_link import RedisLink, redis_link
from flags.snapshots.store import (
    SnapshotStore,
    announce_revisions,
    follow_announcements_elsewhere,
    get_store,
    latest_key,
    reset_store,
    snapshot_key,
)

__all__ = [
    "SECRET_PLACEHOLDER",
    "RedisLink",
    "Served",
    "ServedFlag",
    "ServedVersion",
    "Snapshot",
    "SnapshotStore",
    "SnapshotUnavailable",
    "UnknownEnvironment",
    "UnknownFlag",
    "UnservableFlag",
    "announce_revisions",
    "compile_snapshot",
    "environment_fingerprint",
    "follow_announcements_elsewhere",
    "get_store",
    "latest_key",
    "redis_link",
    "reset_store",
    "snapshot_key",
]
