"""Watching a rollback propagate, for rollback rehearsals: the three things that must each see the
new revision, polled together from the moment of the rollback until all have or time runs out.

- the API: `GET /api/v1/environments/{env}/snapshot` answers with the new revision's ETag;
- the change streams: every connected stream has had the revision written to it, as the stream
  processes report it (flags.serving.acks; needs Redis);
- a probe: a real `flagstaff` client following the stream resolves the baseline for units that
  were in the canary.

Nothing here writes to the database.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flags.serving.acks import Reach, stream_reach
from flagstaff import Flagstaff
from flagstaff.engine.bucketing import bucket

POLL_SECONDS = 0.01


def canary_units(seed: str, weight: int, count: int, *, prefix: str = "rehearsal-unit") -> list[str]:
    """`count` unit names whose bucket under `seed` is below `weight`: served the canary."""
    units: list[str] = []
    index = 0
    while len(units) < count:
        unit = f"{prefix}-{index}"
        if bucket(seed, unit) < weight:
            units.append(unit)
        index += 1
    return units


def served_versions(
    probe: Flagstaff, flag: str, stickiness: str, units: Iterable[str]
) -> dict[str, int | None]:
    return {unit: probe.resolve(flag, {stickiness: unit}).version for unit in units}


@dataclass(frozen=True, slots=True)
class Api:
    """Where the rehearsal reads the snapshot as services do: the base URL and a token."""

    url: str
    token: str

    def snapshot_revision(self, environment: str) -> int | None:
        """The revision the API's snapshot serves now (its ETag), None when it does not answer."""
        if not self.url.startswith(("http://", "https://")):
            return None
        # An http(s) URL, checked above: what S310 warns of (file:, custom schemes) cannot happen.
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/api/v1/environments/{environment}/snapshot",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                etag = answer.headers.get("ETag", "")
        except (urllib.error.URLError, OSError, ValueError):
            return None
        _, _, revision = etag.strip('"').rpartition(":")
        return int(revision) if revision.isdigit() else None


@dataclass
class Watch:
    """The three measures of one rollback, in seconds from it (None: not seen in time)."""

    snapshot_seconds: float | None = None
    stream_seconds: float | None = None
    probe_seconds: float | None = None
    reach: Reach | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return None not in (self.snapshot_seconds, self.stream_seconds, self.probe_seconds)


def watch(
    *,
    started: float,
    revision: int,
    environment: str,
    api: Api,
    redis_url: str | None,
    probe_on_baseline: Callable[[], bool],
    timeout: float,
) -> Watch:
    """Poll the three measures from `started` (time.monotonic() at the rollback's commit) until
    each has seen `revision`, or `timeout` seconds have passed."""
    seen = Watch()
    if not redis_url:
        seen.notes.append(
            "change streams not measured: their acknowledgements travel through Redis (REDIS_URL)"
        )
    deadline = started + timeout
    while True:
        now = time.monotonic()
        if seen.snapshot_seconds is None and (api.snapshot_revision(environment) or -1) >= revision:
            seen.snapshot_seconds = time.monotonic() - started
        if redis_url and seen.stream_seconds is None:
            seen.reach = stream_reach(redis_url, environment, revision)
            if seen.reach.complete:
                seen.stream_seconds = time.monotonic() - started
        if seen.probe_seconds is None and probe_on_baseline():
            seen.probe_seconds = time.monotonic() - started
        if seen.done or (not redis_url and None not in (seen.snapshot_seconds, seen.probe_seconds)):
            return seen
        if now >= deadline:
            return seen
        time.sleep(POLL_SECONDS)
