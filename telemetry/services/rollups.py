"""Per-minute rollups: aggregate a batch of stored calls in Python, then add it in SQL.

Concurrent ingests add to the same rows, so nothing is read and written back: every counter is
incremented by `INSERT ... ON CONFLICT (key) DO UPDATE SET c = c + excluded.c`. On SQLite
(>= 3.35, for RETURNING) that is one statement per table and batch; on PostgreSQL a batch's
three upserts (rollups, their histogram buckets, their counts) are one statement of
data-modifying CTEs, one round trip. Rows are sent in key order, so that two transactions
lock shared rows in the same order and cannot deadlock on them.
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection
from django.utils.dateparse import parse_datetime

from telemetry.histograms import WHOLE_MS_BUCKETS, bucket_of, buckets_of_whole_ms
from telemetry.models import Rollup, RollupCount, RollupHistogram
from telemetry.records import CallRow
from telemetry.services.speedups import speedups

STOP_COLUMNS = {
    "end_turn": "stop_end_turn",
    "max_tokens": "stop_max_tokens",
    "stop_sequence": "stop_stop_sequence",
    "tool_use": "stop_tool_use",
    "pause_turn": "stop_pause_turn",
    "refusal": "stop_refusal",
    "model_context_window_exceeded": "stop_model_context_window_exceeded",
}
# Columns as (name, PostgreSQL type); PostgreSQL receives each column as one typed array.
ROLLUP_KEY = (
    ("bucket", "timestamptz"),
    ("environment_id", "int8"),
    ("flag_id", "int8"),
    ("version", "int4"),
    ("arm", "text"),
    ("model", "text"),
)
# Must match the expressions of the rollup_unique_key index exactly, or ON CONFLICT finds no index.
ROLLUP_CONFLICT = (
    "bucket",
    "(COALESCE(environment_id, 0))",
    "(COALESCE(flag_id, 0))",
    "(COALESCE(version, 0))",
    "arm",
    "model",
)
# Every counter column of a rollup row; the dashboards sum the same list.
ROLLUP_COUNTERS = (
    "calls",
    "errors",
    *STOP_COLUMNS.values(),
    "stop_other",
    "stop_none",
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "cost_micro_usd",
    "cost_unknown_calls",
)
# The sum of squared per-call costs (micro-USD², for the variance of the cost per call) is kept
# apart from the counters above: it is numeric, not int8 (Rollup.cost_sq_micro_usd2 says why),
# and the dashboards do not sum it. It travels as decimal text (the JSON row source casts text,
# and orjson refuses integers beyond 64 bits), which SQLite's numeric column stores as an integer.
COST_SQ = "cost_sq_micro_usd2"
HISTOGRAM_KEY = (("rollup_id", "int8"), ("metric", "text"), ("bucket", "int2"))
COUNT_KEY = (("rollup_id", "int8"), ("kind", "text"), ("key", "text"))
_LATENCY = RollupHistogram.Metric.LATENCY.value
_TTFT = RollupHistogram.Metric.TTFT.value
_ERROR_TYPE = RollupCount.Kind.ERROR_TYPE.value
_STOP_REASON = RollupCount.Kind.STOP_REASON.value
# Where each counter sits in a group's list, by name: the list is positional for speed, the
# positions come from ROLLUP_COUNTERS alone.
_AT = {name: position for position, name in enumerate(ROLLUP_COUNTERS)}
_CALLS, _ERRORS = _AT["calls"], _AT["errors"]
_STOP_INDEX = {reason: _AT[column] for reason, column in STOP_COLUMNS.items()}
_STOP_OTHER, _STOP_NONE = _AT["stop_other"], _AT["stop_none"]
_TOKENS, _TOKENS_OUT = _AT["input_tokens"], _AT["output_tokens"]
_TOKENS_5M, _TOKENS_1H = _AT["cache_write_5m_tokens"], _AT["cache_write_1h_tokens"]
_TOKENS_READ = _AT["cache_read_tokens"]
_COST, _COST_UNKNOWN = _AT["cost_micro_usd"], _AT["cost_unknown_calls"]
# Stay below SQLite's 32,766 bound parameters per statement.
MAX_PARAMETERS = 30_000

# (minutes since the epoch, environment id, flag id, version, arm, model)
RollupKey = tuple[int, int | None, int | None, int | None, str, str]


def upsert_increments(
    *,
    table: str,
    key_columns: Sequence[tuple[str, str]],
    conflict_target: Sequence[str],
    counters: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: Sequence[str] = (),
    counter_types: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert rows (keys then counters), adding the counters to a row that already has the key.

    The one upsert statement of the telemetry app: `INSERT ... ON CONFLICT (key) DO UPDATE SET
    c = table.c + excluded.c`, the same on PostgreSQL and SQLite. Only the row source differs:
    on PostgreSQL the rows travel as one JSON array of arrays (`jsonb_array_elements`, each
    element cast to its column's type), so the statement text is the same whatever the row
    count and is prepared once per connection, and encoding the rows costs one orjson call
    instead of Python-level array adaptation; on SQLite a VALUES list. Counters are int8 unless
    `counter_types` gives each one's PostgreSQL type (a sum of scores is float8).
    """
    if not rows:
        return []
    quote = connection.ops.quote_name
    names = [name for name, _ in key_columns] + list(counters)
    tail = f" RETURNING {', '.join(quote(c) for c in returning)}" if returning else ""
    head, conflict = _upsert_parts(table, names, conflict_target, counters)
    if connection.vendor == "postgresql":
        types = [kind for _, kind in key_columns] + list(counter_types or ["int8"] * len(counters))
        source = _json_rows_source(types, "%s")
        return execute_binary(
            head + source + conflict + tail, [orjson.dumps(rows).decode()], fetch=bool(returning)
        )
    placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
    per_statement = max(1, MAX_PARAMETERS // len(names))
    returned: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = head + "VALUES " + ", ".join([placeholders] * len(chunk)) + conflict + tail
            cursor.execute(sql, [value for row in chunk for value in row])
            if returning:
                returned.extend(cursor.fetchall())
    return returned


def _upsert_parts(
    table: str, names: Sequence[str], conflict_target: Sequence[str], counters: Sequence[str]
) -> tuple[str, str]:
    """`INSERT INTO table (names) ` and ` ON CONFLICT (key) DO UPDATE SET c = table.c +
    excluded.c, ...`, between which a row source goes. Identifiers and types come from this
    app's constants; every value is a parameter."""
    quote = connection.ops.quote_name
    updates = ", ".join(f"{quote(c)} = {quote(table)}.{quote(c)} + excluded.{quote(c)}" for c in counters)
    head = f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in names)}) "
    return head, f" ON CONFLICT ({', '.join(conflict_target)}) DO UPDATE SET {updates}"


def _json_rows_source(types: Sequence[str], parameter: str, *, alias: str = "row") -> str:
    """A SELECT of the rows of one JSON array of arrays, each element cast to its type."""
    casts = ", ".join(f"({alias}->>{position})::{kind}" for position, kind in enumerate(types))
    return f"SELECT {casts} FROM jsonb_array_elements({parameter}::jsonb) AS {alias}"  # noqa: S608


def execute_binary(sql: str, params: Sequence[Any], *, fetch: bool = False) -> list[tuple[Any, ...]]:
    """Run one statement on PostgreSQL with server-side, binary parameters (in the current
    transaction). Django's cursors interpolate parameters into the SQL text on the client,
    which for thousands of array elements costs more than the statement itself.

    The statement is prepared on the connection the first time its text is run, then only
    executed: its text is the same whatever the row count, and the batch's rollup statement cost
    the database more to parse and plan than to run. Django turns psycopg's prepared statements
    off on every connection (`prepare_threshold=None`, for transaction-pooling proxies, which
    lose them; ingest needs session-level pooling anyway, call_store says why), so they are
    turned on for this statement only."""
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    threshold = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, binary=True, prepare=True)
            return cursor.fetchall() if fetch else []
    finally:
        raw.prepare_threshold = threshold


def _sort_key(key: RollupKey) -> tuple[Any, ...]:
    bucket, environment_id, flag_id, version, arm, model = key
    return (bucket, environment_id or 0, flag_id or 0, version or 0, arm, model)


def _present(values: list[Any]) -> list[Any]:
    """The values that are not None (most batches have none: then no Python loop)."""
    if None in values:
        return [value for value in values if value is not None]
    return values


_column = {name: operator.itemgetter(position) for position, name in enumerate(CallRow._fields)}
# A row's token columns, in ROLLUP_COUNTERS' names.
_TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
)


def group_rows(rows: Iterable[CallRow]) -> dict[RollupKey, list[CallRow]]:
    """Stored rows by their rollup key. telemetry/_speedups.c's group_rows does the same in C
    (tests/telemetry/test_speedups.py compares them)."""
    by_key: dict[RollupKey, list[CallRow]] = {}
    for row in rows:
        # The minute as a number: hashing an aware datetime per call costs more than this.
        minute = int(row.timestamp.timestamp()) // 60
        if row.attributed:
            key: RollupKey = (minute, row.environment_id, row.flag_id, row.version, row.arm, row.model)
        else:  # unattributed calls roll up under no flag, whatever part of the token resolved
            key = (minute, row.environment_id, None, None, "", row.model)
        calls = by_key.get(key)
        if calls is None:
            by_key[key] = [row]
        else:
            calls.append(row)
    return by_key


class _Group:
    """What one rollup key gathers from a batch."""

    __slots__ = ("cost_sq", "counters", "counts", "histogram")

    def __init__(self) -> None:
        self.counters = [0] * len(ROLLUP_COUNTERS)
        self.cost_sq = 0  # exact: a Python int does not overflow
        self.histogram: dict[tuple[str, int], int] = {}
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, calls: list[CallRow]) -> None:
        """Add calls of this key, each once. telemetry/_speedups.c's tally does the same in C
        (tests/telemetry/test_speedups.py compares them)."""
        counters = self.counters
        counters[_CALLS] += len(calls)
        for name in _TOKEN_COLUMNS:
            counters[_AT[name]] += sum(map(_column[name], calls))
        counts = self.counts
        error_types = Counter(filter(None, map(_column["error_type"], calls)))
        for error_type, n in error_types.items():
            counters[_ERRORS] += n
            counts[(_ERROR_TYPE, error_type)] = counts.get((_ERROR_TYPE, error_type), 0) + n
        for stop_reason, n in Counter(map(_column["stop_reason"], calls)).items():
            if not stop_reason:
                counters[_STOP_NONE] += n
            elif stop_reason in _STOP_INDEX:
                counters[_STOP_INDEX[stop_reason]] += n
            else:
                counters[_STOP_OTHER] += n
                counts[(_STOP_REASON, stop_reason)] = counts.get((_STOP_REASON, stop_reason), 0) + n
        costs = _present(list(map(_column["cost_micro_usd"], calls)))
        counters[_COST_UNKNOWN] += len(calls) - len(costs)
        counters[_COST] += sum(costs)
        self.cost_sq += sum(map(operator.mul, costs, costs))  # exact: Python ints do not overflow
        histogram = self.histogram
        for metric, column in ((_LATENCY, "latency_ms"), (_TTFT, "ttft_ms")):
            durations = _present(list(map(_column[column], calls)))
            for bucket, n in Counter(buckets_of_whole_ms(durations)).items():
                histogram[(metric, bucket)] = histogram.get((metric, bucket), 0) + n


if speedups is not None:
    # Where telemetry/_speedups.c's tally, the C of _Group.add, finds and puts each figure; it
    # adds the token columns from input_tokens on, in _TOKEN_COLUMNS' order.
    if [_AT[name] for name in _TOKEN_COLUMNS] != list(range(_TOKENS, _TOKENS + len(_TOKEN_COLUMNS))):
        raise RuntimeError("ROLLUP_COUNTERS must keep the token columns together, in _TOKEN_COLUMNS' order")
    speedups.layout(
        _STOP_INDEX,
        len(ROLLUP_COUNTERS),
        _CALLS,
        _ERRORS,
        _STOP_OTHER,
        _STOP_NONE,
        _TOKENS,
        _COST,
        _COST_UNKNOWN,
        (_LATENCY, _TTFT),
        _ERROR_TYPE,
        _STOP_REASON,
        WHOLE_MS_BUCKETS,
        bucket_of,
    )


class RollupBatch:
    """The increments one batch of new calls makes to the rollups."""

    def __init__(self) -> None:
        self.groups: dict[RollupKey, _Group] = {}

    def add_calls(self, rows: list[CallRow]) -> None:
        """Add stored calls, each once: sorted into their rollup keys, then each group's sums
        and counts. On the ingest path, 1,000 calls a batch (bench/bench_ingest.py measures it):
        both steps run in C when telemetry/_speedups.c is built; otherwise the grouping is a
        Python loop and every sum of a group one C-level pass (sum, map, Counter)."""
        by_key = speedups.group_rows(rows) if speedups is not None else group_rows(rows)
        add = speedups.tally if speedups is not None else _Group.add
        for key, calls in by_key.items():
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group()
            add(group, calls)

    def write(self) -> None:
        """Add the batch to the rollup tables: one statement on PostgreSQL, three on SQLite."""
        if not self.groups:
            return
        keys = sorted(self.groups, key=_sort_key)
        adapt = connection.ops.adapt_datetimefield_value
        rows = [
            (adapt(_bucket_at(key[0])), *key[1:], *self.groups[key].counters, str(self.groups[key].cost_sq))
            for key in keys
        ]
        if connection.vendor == "postgresql":
            # Children name their rollup by its position in `rows` (1-based, as WITH ORDINALITY).
            groups = [self.groups[key] for key in keys]
            histograms = [
                (position, metric, bucket, n)
                for position, group in enumerate(groups, 1)
                for (metric, bucket), n in group.histogram.items()
            ]
            counts = [
                (position, kind, value, n)
                for position, group in enumerate(groups, 1)
                for (kind, value), n in group.counts.items()
            ]
            execute_binary(
                _one_statement_sql(),
                [
                    orjson.dumps(rows).decode(),
                    orjson.dumps(histograms).decode(),
                    orjson.dumps(counts).decode(),
                ],
            )
            return
        returned = upsert_increments(
            table=Rollup._meta.db_table,
            key_columns=ROLLUP_KEY,
            conflict_target=ROLLUP_CONFLICT,
            counters=_ROLLUP_COLUMNS,
            rows=rows,
            returning=("id", *(name for name, _ in ROLLUP_KEY)),
        )
        ids = {(int(_as_utc(row[1]).timestamp()) // 60, *row[2:]): row[0] for row in returned}
        _write_children(
            table=RollupHistogram._meta.db_table,
            key_columns=HISTOGRAM_KEY,
            items=(
                (ids[key], metric, bucket, n)
                for key, group in self.groups.items()
                for (metric, bucket), n in group.histogram.items()
            ),
        )
        _write_children(
            table=RollupCount._meta.db_table,
            key_columns=COUNT_KEY,
            items=(
                (ids[key], kind, value, n)
                for key, group in self.groups.items()
                for (kind, value), n in group.counts.items()
            ),
        )


_ROLLUP_COLUMNS = (*ROLLUP_COUNTERS, COST_SQ)
_ROLLUP_TYPES = (*(kind for _, kind in ROLLUP_KEY), *["int8"] * len(ROLLUP_COUNTERS), "numeric")


@functools.cache
def _one_statement_sql() -> str:
    """The rollup rows, their histogram buckets and their counts in one PostgreSQL statement
    (data-modifying CTEs): one round trip instead of three, and the rollup ids never leave the
    database. Parameters: the rollup rows, then (position, metric, bucket, n) and (position,
    kind, key, n) rows, each a JSON array of arrays. Every table is written in key order
    (rollups by their sort key, children by rollup id), so concurrent batches lock shared rows
    in one order."""
    quote = connection.ops.quote_name
    names = [name for name, _ in ROLLUP_KEY] + list(_ROLLUP_COLUMNS)
    casts = ", ".join(
        f"(row->>{position})::{kind} AS {quote(name)}"
        for position, (name, kind) in enumerate(zip(names, _ROLLUP_TYPES, strict=True))
    )
    head, conflict = _upsert_parts(Rollup._meta.db_table, names, ROLLUP_CONFLICT, _ROLLUP_COLUMNS)
    key_names = [name for name, _ in ROLLUP_KEY]
    same_key = " AND ".join(
        f"upserted.{quote(name)} = source.{quote(name)}"
        if kind in ("timestamptz", "text")
        else f"COALESCE(upserted.{quote(name)}, 0) = COALESCE(source.{quote(name)}, 0)"
        for name, kind in ROLLUP_KEY
    )
    children = []
    for table, key_columns in (
        (RollupHistogram._meta.db_table, HISTOGRAM_KEY),
        (RollupCount._meta.db_table, COUNT_KEY),
    ):
        child_names = [name for name, _ in key_columns] + ["n"]
        child_head, child_conflict = _upsert_parts(table, child_names, child_names[:-1], ("n",))
        values = ", ".join(
            f"(child->>{position})::{kind}" for position, (_, kind) in enumerate(key_columns[1:], 1)
        )
        children.append(
            f"{child_head}SELECT ids.id, {values}, (child->>{len(key_columns)})::int8 "  # noqa: S608
            f"FROM jsonb_array_elements(%s::jsonb) AS child "
            f"JOIN ids ON ids.position = (child->>0)::int8 ORDER BY 1, 2, 3{child_conflict}"
        )
    return (
        f"WITH source AS (SELECT source_rows.position, {casts} "  # noqa: S608 - constant names
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS source_rows(row, position)), "
        f"upserted AS ({head}SELECT {', '.join(quote(name) for name in names)} FROM source "
        f"ORDER BY source.position{conflict} RETURNING id, {', '.join(quote(n) for n in key_names)}), "
        f"ids AS (SELECT source.position, upserted.id FROM source JOIN upserted ON {same_key}), "
        f"histogram AS ({children[0]}) "
        f"{children[1]}"
    )


def _bucket_at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def _as_utc(value: datetime | str) -> datetime:
    """A bucket as RETURNING gives it back (aware, naive UTC or text by backend), made aware."""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is None:
        raise ValueError(f"not a datetime: {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _write_children(
    *, table: str, key_columns: Sequence[tuple[str, str]], items: Iterable[tuple[Any, ...]]
) -> None:
    rows = sorted(items)
    upsert_increments(
        table=table,
        key_columns=key_columns,
        conflict_target=[name for name, _ in key_columns],
        counters=("n",),
        rows=rows,
    )
