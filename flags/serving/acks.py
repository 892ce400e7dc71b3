"""What the change streams have delivered: each stream process reports, per environment, how many
streams it holds and up to which revision each has been written to its client's socket; a
rollback rehearsal (rollouts) reads the sum to time "every connected client has it".

A report is one Redis key per process and environment, `flagstaff:stream-acks:<env>:<process>`,
holding `{"connected": n, "revisions": {"<revision>": streams at it}, "at": unix time}` and
expiring after a few keep-alive intervals, so a process that died stops counting. Keys live in
the database of `REDIS_URL`, so deployments sharing a Redis server apart are apart here too.
A stream counts as having a revision once the event carrying it (or, on connect, the first
event: the client then holds the current revision) has been handed to the connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from flags.snapshots.redis_link import make_redis_client

ACKS_PREFIX = "flagstaff:stream-acks"


def report_key(environment: str, process: str) -> str:
    return f"{ACKS_PREFIX}:{environment}:{process}"


def report_document(connected: int, revisions: Mapping[int, int], at: float) -> str:
    return json.dumps(
        {"connected": connected, "revisions": {str(rev): n for rev, n in revisions.items()}, "at": at},
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class Reach:
    """How many streams of an environment are connected, and how many hold a revision."""

    processes: int
    connected: int
    reached: int

    @property
    def complete(self) -> bool:
        return self.reached >= self.connected


def stream_reach(redis_url: str, environment: str, revision: int) -> Reach:
    """The sum of every live stream process's report for `environment` at `revision`."""
    client = make_redis_client(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{ACKS_PREFIX}:{environment}:*", count=100))
        documents = client.mget(keys) if keys else []
    finally:
        client.close()
    processes = connected = reached = 0
    for raw in documents:
        if raw is None:  # expired between the scan and the read
            continue
        try:
            report = json.loads(raw)
            streams = int(report["connected"])
            at_least = sum(int(n) for rev, n in report["revisions"].items() if int(rev) >= revision)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        processes += 1
        connected += streams
        reached += min(at_least, streams)
    return Reach(processes, connected, reached)
