"""Per-arm sums of an analysis window, and their checkpoint up to a settled minute.

A tick needs each arm's cumulative counts since its stage (or experiment) began. Summing every
per-minute rollup row since then costs more each minute of the stage and grows with the
traffic (histogram rows come per non-empty latency bucket), so each tick keeps the sums of the
settled minutes in an `AggregateCheckpoint` and the next one reads that plus the rows after it
(rollouts/arm_aggregates.py).

Settled: rollup rows of a minute still change after it (telemetry batches sent late, live
scoring catching up), so a minute is settled `FLAGSTAFF_ROLLOUT_SETTLED_MINUTES` after it ended,
and only settled minutes go into a checkpoint. Rows reaching a settled minute afterwards are not
counted for that window; everything younger is re-read every tick, exactly as a full re-sum.

A checkpoint is a pure function of its window (flag, environment, first minute, arm -> version,
the histogram metrics and scorers summed) and of the settled rows, so two workers writing it
write the same sums, and a window that differs (a new stage start, a policy edit, another
rollout) starts from its first minute again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from rollouts.models import AggregateCheckpoint

# What a live-score rollup adds up per arm and scorer.
SCORE_FIELDS = ("n", "passed", "errors")


def settled_before(until: datetime) -> datetime:
    """The first minute that is not settled yet at `until`."""
    lag = timedelta(minutes=settings.FLAGSTAFF_ROLLOUT_SETTLED_MINUTES)
    return (until - lag).replace(second=0, microsecond=0)


@dataclass
class Sums:
    """Per arm: the rollup counters, the cost's sum of squares (None: unknown), histogram
    counts per metric and bucket, and live-score counts per scorer."""

    counters: dict[str, dict[str, int]]
    squares: dict[str, int | None]
    histograms: dict[str, dict[str, dict[int, int]]] = field(default_factory=dict)
    scores: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    @classmethod
    def empty(cls, arms: Iterable[str], counters: Sequence[str]) -> Sums:
        names = list(arms)
        return cls(
            counters={arm: dict.fromkeys(counters, 0) for arm in names},
            squares=dict.fromkeys(names, 0),
            histograms={arm: {} for arm in names},
            scores={arm: {} for arm in names},
        )

    def copy(self) -> Sums:
        return Sums(
            counters={arm: dict(values) for arm, values in self.counters.items()},
            squares=dict(self.squares),
            histograms={
                arm: {metric: dict(buckets) for metric, buckets in metrics.items()}
                for arm, metrics in self.histograms.items()
            },
            scores={
                arm: {scorer: dict(values) for scorer, values in scorers.items()}
                for arm, scorers in self.scores.items()
            },
        )

    def add_counters(self, arm: str, values: Mapping[str, int], squares: int | None) -> None:
        totals = self.counters[arm]
        for name, value in values.items():
            totals[name] += value
        known = self.squares[arm]
        self.squares[arm] = None if known is None or squares is None else known + squares

    def add_histogram(self, arm: str, metric: str, bucket: int, n: int) -> None:
        buckets = self.histograms[arm].setdefault(metric, {})
        buckets[bucket] = buckets.get(bucket, 0) + n

    def add_scores(self, arm: str, scorer: str, values: Mapping[str, int]) -> None:
        totals = self.scores[arm].setdefault(scorer, dict.fromkeys(SCORE_FIELDS, 0))
        for name in SCORE_FIELDS:
            totals[name] += values[name]

    def add(self, other: Sums) -> None:
        for arm, values in other.counters.items():
            self.add_counters(arm, values, other.squares[arm])
        for arm, metrics in other.histograms.items():
            for metric, buckets in metrics.items():
                # A loop over the buckets here rather than add_histogram per bucket: a tick adds
                # every window's histograms twice (the settled rows, the recent ones).
                totals = self.histograms[arm].setdefault(metric, {})
                for bucket, n in buckets.items():
                    totals[bucket] = totals.get(bucket, 0) + n
        for arm, scorers in other.scores.items():
            for scorer, values in scorers.items():
                self.add_scores(arm, scorer, values)

    def to_json(self) -> dict[str, Any]:
        # Sums of squares pass 2^63 (and JSON readers' float range of exact integers): text.
        return {
            "counters": self.counters,
            "squares": {arm: None if value is None else str(value) for arm, value in self.squares.items()},
            "histograms": {
                arm: {
                    metric: {str(bucket): n for bucket, n in buckets.items()}
                    for metric, buckets in metrics.items()
                }
                for arm, metrics in self.histograms.items()
            },
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sums:
        return cls(
            counters={arm: dict(values) for arm, values in data["counters"].items()},
            squares={arm: None if value is None else int(value) for arm, value in data["squares"].items()},
            histograms={
                arm: {
                    metric: {int(bucket): n for bucket, n in buckets.items()}
                    for metric, buckets in metrics.items()
                }
                for arm, metrics in data["histograms"].items()
            },
            scores={
                arm: {scorer: dict(values) for scorer, values in scorers.items()}
                for arm, scorers in data["scores"].items()
            },
        )


@dataclass(frozen=True)
class Identity:
    """What a checkpoint's sums are the sums of (besides its settled minute)."""

    flag_id: int
    environment_id: int
    since: datetime  # the window's first minute
    arms: dict[str, int]
    sources: list[str]

    @property
    def key(self) -> tuple[int, int]:
        return (self.flag_id, self.environment_id)


@dataclass(frozen=True)
class Checkpoint:
    settled_until: datetime
    sums: Sums


def load(identities: Sequence[Identity], until: datetime) -> dict[tuple[int, int], Checkpoint]:
    """The checkpoints still valid for these windows read until `until`, by flag × environment."""
    wanted = {identity.key: identity for identity in identities}
    if not wanted:
        return {}
    rows = AggregateCheckpoint.objects.filter(
        flag_id__in={key[0] for key in wanted}, environment_id__in={key[1] for key in wanted}
    )
    found: dict[tuple[int, int], Checkpoint] = {}
    for row in rows:
        identity = wanted.get((row.flag_id, row.environment_id))
        if (
            identity is not None
            and row.since == identity.since
            and row.arms == identity.arms
            and row.sources == identity.sources
            and row.settled_until <= until
        ):
            found[identity.key] = Checkpoint(row.settled_until, Sums.from_json(row.sums))
    return found


# The columns an upsert replaces, in the order `save` gives them.
_UPDATED = ("since", "arms", "sources", "settled_until", "sums")


def save(checkpoints: Sequence[tuple[Identity, Checkpoint]]) -> None:
    """Keep (or replace) each flag × environment's checkpoint, in one statement.

    An upsert written out rather than `bulk_create(update_conflicts=True)`: on PostgreSQL that
    sends each column as one array, and psycopg escapes every quote of every JSON text in an
    array element by a regular-expression substitution, which made the save (the sums hold
    every histogram bucket) a large share of a steady tick's Python time; as plain parameters
    the JSON texts are quoted by libpq. The same statement runs on SQLite."""
    if not checkpoints:
        return
    adapt = connection.ops.adapt_datetimefield_value
    values: list[str] = []
    params: list[Any] = []
    # One order for every writer, so that two upserting the same rows cannot deadlock.
    for identity, checkpoint in sorted(checkpoints, key=lambda item: item[0].key):
        values.append("(%s, %s, %s, %s, %s, %s, %s)")
        params += [
            identity.flag_id,
            identity.environment_id,
            adapt(identity.since),
            json.dumps(identity.arms),
            json.dumps(identity.sources),
            adapt(checkpoint.settled_until),
            json.dumps(checkpoint.sums.to_json()),
        ]
    updated = ", ".join(f"{column} = excluded.{column}" for column in _UPDATED)
    sql = (
        f"INSERT INTO {AggregateCheckpoint._meta.db_table} "  # noqa: S608 - constant names, values as parameters
        f"(flag_id, environment_id, {', '.join(_UPDATED)}) VALUES {', '.join(values)} "
        f"ON CONFLICT (flag_id, environment_id) DO UPDATE SET {updated}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
