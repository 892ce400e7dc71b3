"""The rollup rows of many analysis windows, summed per window, arm and settledness in one
statement per table (rollouts/arm_aggregates.py puts them together).

The windows are a `VALUES` table joined to the rollups rather than an `OR` of one ORM filter
per window: building and compiling a hundred ORM filters cost a tick more CPU than the database
spent answering. But the join alone gives PostgreSQL no range to look up in the (flag, bucket)
index (each window's range is a column of `w`): once the rollup table was large, it
scanned the whole table and hashed it against `w`, so a tick cost what the table holds (every
flag, the whole retention), not the minutes it reads. So each statement also names every
window's flag and minutes as constants, `(flag_id = … AND bucket >= … AND bucket < …) OR …`,
which PostgreSQL reads as one bitmap of those index ranges; SQLite, which already looked each
window's rows up through the join, checks it on the rows it found. bench/bench_rollout_tick.py
`--explain` prints PostgreSQL's plans. Plain SQL that both run; datetimes are adapted as the
ORM stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from evals.models import LiveScoreRollup
from telemetry.models.calls import Rollup, RollupHistogram


@dataclass(frozen=True)
class Span:
    """One window's rows to read: its arms (name -> version), from `since` to `until`."""

    flag_id: int
    environment_id: int
    arms: Mapping[str, int]
    since: datetime
    until: datetime


def _windows(spans: Sequence[Span]) -> tuple[str, list[Any], list[tuple[int, int, str]]]:
    """The `w` table: a row per window and arm, numbered `i` from 0; and (flag, environment,
    arm) by that number."""
    adapt = connection.ops.adapt_datetimefield_value
    values: list[str] = []
    params: list[Any] = []
    arms: list[tuple[int, int, str]] = []
    for span in spans:
        for arm, version in span.arms.items():
            values.append("(%s, %s, %s, %s, %s, %s, %s)")
            params += [
                len(arms),
                span.flag_id,
                span.environment_id,
                arm,
                version,
                adapt(span.since),
                adapt(span.until),
            ]
            arms.append((span.flag_id, span.environment_id, arm))
    sql = f"WITH w (i, flag_id, environment_id, arm, version, since, until) AS (VALUES {', '.join(values)})"
    return sql, params, arms


def _ranges(spans: Sequence[Span]) -> tuple[str, list[Any]]:
    """Each window's flag and minutes as constants: the index ranges the statement reads."""
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for span in spans:
        params += [span.flag_id, adapt(span.since), adapt(span.until)]
    ranges = " OR ".join(["(r.flag_id = %s AND r.bucket >= %s AND r.bucket < %s)"] * len(spans))
    return f"({ranges})", params


_JOIN = (
    "JOIN w ON r.flag_id = w.flag_id AND r.environment_id = w.environment_id AND r.arm = w.arm "
    "AND r.version = w.version AND r.bucket >= w.since AND r.bucket < w.until"
)
_SETTLED = "CASE WHEN r.bucket < %s THEN 1 ELSE 0 END"


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    # Without parallel workers: PostgreSQL plans them once the rollup table is large (its cost
    # estimate follows the table), but these statements read a few thousand rows, and starting
    # the workers and gathering their rows took longer than the reading itself
    # (bench_rollout_tick.py --explain shows the Gather's time beside its workers'). `SET LOCAL`
    # ends with the transaction (the caller's, when it has one). No transaction on SQLite: its
    # transactions begin IMMEDIATE here (settings.py), which would take the write lock to read.
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic() if postgresql else nullcontext(), connection.cursor() as cursor:
        if postgresql:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cursor.execute(sql, params)
        return cursor.fetchall()


def counter_rows(
    spans: Sequence[Span], settle: datetime, counters: Sequence[str], squares: str
) -> list[tuple[Any, ...]]:
    """(flag, environment, arm, settled 0/1, each counter's sum, the sum of `squares`, how many
    rows have a null `squares`)."""
    with_windows, params, _ = _windows(spans)
    ranges, range_params = _ranges(spans)
    sums = ", ".join(f"SUM(r.{name})" for name in counters)
    sql = (
        f"{with_windows} SELECT r.flag_id, r.environment_id, r.arm, {_SETTLED} AS settled, {sums}, "  # noqa: S608 - constant names, values as parameters
        f"SUM(r.{squares}), SUM(CASE WHEN r.{squares} IS NULL THEN 1 ELSE 0 END) "
        f"FROM {Rollup._meta.db_table} r {_JOIN} WHERE {ranges} "
        "GROUP BY r.flag_id, r.environment_id, r.arm, settled"
    )
    return _rows(sql, [*params, connection.ops.adapt_datetimefield_value(settle), *range_params])


def histogram_rows(spans: Sequence[Span], settle: datetime, metrics: Sequence[str]) -> list[tuple[Any, ...]]:
    """(flag, environment, arm, settled 0/1, metric, bucket, n) of these histogram metrics."""
    with_windows, params, arms = _windows(spans)
    ranges, range_params = _ranges(spans)
    # Grouped by the number of the window's arm rather than by (flag, environment, arm): the
    # groups are the same, and sorting the unsettled minutes' histogram rows (thousands per tick,
    # more with the calls) by an integer is cheaper than by text compared under a collation.
    sql = (
        f"{with_windows} SELECT w.i, {_SETTLED} AS settled, h.metric, "  # noqa: S608 - constant names, values as parameters
        f"h.bucket, CAST(SUM(h.n) AS BIGINT) FROM {Rollup._meta.db_table} r {_JOIN} "
        f"JOIN {RollupHistogram._meta.db_table} h ON h.rollup_id = r.id "
        f"WHERE {ranges} AND h.metric IN ({', '.join(['%s'] * len(metrics))}) "
        "GROUP BY w.i, settled, h.metric, h.bucket"
    )
    rows = _rows(sql, [*params, connection.ops.adapt_datetimefield_value(settle), *range_params, *metrics])
    return [(*arms[i], *values) for i, *values in rows]


def score_rows(spans: Sequence[Span], settle: datetime, scorers: Sequence[str]) -> list[tuple[Any, ...]]:
    """(flag, environment, arm, settled 0/1, scorer, n, passed, errors) of these scorers."""
    with_windows, params, _ = _windows(spans)
    ranges, range_params = _ranges(spans)
    sql = (
        f"{with_windows} SELECT r.flag_id, r.environment_id, r.arm, {_SETTLED} AS settled, r.scorer, "  # noqa: S608 - constant names, values as parameters
        f"SUM(r.n), SUM(r.passed), SUM(r.errors) FROM {LiveScoreRollup._meta.db_table} r {_JOIN} "
        f"WHERE {ranges} AND r.scorer IN ({', '.join(['%s'] * len(scorers))}) "
        "GROUP BY r.flag_id, r.environment_id, r.arm, settled, r.scorer"
    )
    return _rows(sql, [*params, connection.ops.adapt_datetimefield_value(settle), *range_params, *scorers])
