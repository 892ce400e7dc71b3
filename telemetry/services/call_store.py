"""Storing call rows exactly once per environment, and learning which ones the database really
inserted. A call's key is (request_id, environment): the same request_id sent from staging and
from production is two calls; unattributed calls (no environment) share one key space.

- PostgreSQL: the rows go in by one binary COPY; if it completes, it inserted every one of
  them (the unique index on the key would have refused any other). If one of them is stored
  already (a re-sent batch, or a concurrent batch that stored it meanwhile), the COPY fails
  whole and the rows go in by the staged path instead: copied into a temporary table, then one
  `INSERT ... SELECT ... ON CONFLICT (<key>) DO NOTHING RETURNING <key>`, which waits for a
  concurrent insert of the same key and then skips it. A COPY in the caller's own transaction
  raises StoredAlready: the caller rolls that transaction back and stores the batch again with
  `staged=True` (no savepoint, two round trips fewer per batch); inside an outer transaction
  that must not be rolled back, the COPY runs under a savepoint and falls back by itself.
  COPY inserts many rows per page and WAL record, faster than INSERT ... ON CONFLICT row by row
  (bench/bench_ingest.py compares ingest with a raw COPY; bench/README.md has the
  measurements).
- SQLite: transactions are serialised (BEGIN IMMEDIATE), and the same INSERT ... ON CONFLICT
  DO NOTHING RETURNING (SQLite >= 3.35) reports the inserted rows.
Rows go in key order, so concurrent batches lock shared keys in the same order.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable
from typing import Any, get_type_hints

import psycopg
from django.db import connection, transaction
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from telemetry.models import CallRecord
from telemetry.records import CallRow
from telemetry.services.speedups import speedups

logger = logging.getLogger(__name__)


CALL_COLUMNS = tuple(
    (name, hint.__metadata__[0]) for name, hint in get_type_hints(CallRow, include_extras=True).items()
)
COLUMN_NAMES = CallRow._fields
COLUMN_TYPES = tuple(kind for _, kind in CALL_COLUMNS)
_DATETIME_POSITIONS = tuple(
    position for position, (_, kind) in enumerate(CALL_COLUMNS) if kind == "timestamptz"
)
# Each column's type as telemetry/_speedups.c's copy_binary names it.
COPY_KINDS = bytes(
    {"text": b"t", "jsonb": b"j", "bool": b"b", "int4": b"4", "int8": b"8", "timestamptz": b"T"}[kind][0]
    for kind in COLUMN_TYPES
)
STAGE_TABLE = "telemetry_ingest_stage"
# Must match the expressions of the callrecord_unique_environment_request_id index exactly, or
# ON CONFLICT finds no index.
CALL_CONFLICT = "(request_id, (COALESCE(environment_id, 0)))"
# What every insert returns: the key of each row it really inserted.
_RETURNING = "RETURNING request_id, environment_id"

# (request_id, environment_id or None): the identity of a stored call.
CallKey = tuple[str, int | None]


# A row's CallKey: (request_id, environment_id), one C call.
call_key: Callable[[CallRow], CallKey] = operator.itemgetter(
    CallRow._fields.index("request_id"), CallRow._fields.index("environment_id")
)


def lock_order(row: CallRow) -> tuple[str, int]:
    """The order rows go in (telemetry/_speedups.c's sort_rows sorts by the same)."""
    return (row.request_id, row.environment_id or 0)


class StoredAlready(Exception):
    """The COPY met a call stored already; the transaction it ran in is aborted."""


def insert_new_calls(rows: list[CallRow], *, nested: bool, staged: bool = False) -> set[CallKey]:
    """Insert the rows whose key is new; the keys of the rows the database really inserted.

    JSON columns are JSON text. `nested`: the caller's transaction is inside an outer one, which
    will not commit right after and must not be rolled back: the COPY runs under a savepoint
    and the staging table, which empties itself at commit, is emptied by hand. Otherwise a COPY
    that meets a stored call raises StoredAlready, and the caller rolls its transaction back and
    calls again with `staged=True`.
    """
    if not rows:
        return set()
    # One lock order for concurrent batches.
    if speedups is not None:
        speedups.sort_rows(rows)
    else:
        rows.sort(key=lock_order)
    if connection.vendor == "postgresql":
        return _insert_postgresql(rows, nested=nested, staged=staged)
    return _insert_portable(rows)


class _JsonTextDumper(Dumper):
    """Binary jsonb from JSON text already encoded (jsonb's binary format is version 1 + text)."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


def _insert_postgresql(rows: list[CallRow], *, nested: bool, staged: bool) -> set[CallKey]:
    """COPY the rows straight into the table; if one of them is stored already (a re-sent
    batch, or a concurrent batch that stored it first) insert with ON CONFLICT DO NOTHING
    instead (see insert_new_calls).

    No duplicate check beforehand: looking up a batch's keys cost the database about a fifth
    of the COPY itself, for every batch, while a re-sent batch is rare and its COPY stops at its
    first row (the rows go in key order). The unique index decides either way: a COPY that
    completes inserted every row it carried; one that meets a stored (or concurrently inserted,
    then committed) key fails whole.
    """
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    # A cursor of our own: server-side binary parameters (Django's interpolate on the client).
    with psycopg.Cursor(raw) as cursor:
        cursor.adapters.register_dumper(None, _JsonTextDumper)
        if staged:
            return _insert_staged(cursor, rows, empty_stage=nested)
        if not nested:
            try:
                _copy_into(cursor, _table(), rows)
            except psycopg.errors.UniqueViolation:
                raise StoredAlready from None
            return set(map(call_key, rows))
        try:
            with transaction.atomic():
                _copy_into(cursor, _table(), rows)
        except psycopg.errors.UniqueViolation:
            logger.info("telemetry batch holds a call stored already; inserting with ON CONFLICT")
            return _insert_staged(cursor, rows, empty_stage=True)
    return set(map(call_key, rows))


def _table() -> str:
    return connection.ops.quote_name(CallRecord._meta.db_table)


@functools.cache
def _copy_statement(table: str) -> str:
    """The COPY of every column into `table` (PostgreSQL's quoting): made once per table, not
    per batch."""
    columns = ", ".join(connection.ops.quote_name(name) for name in COLUMN_NAMES)
    return f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"


def _copy_into(cursor: psycopg.Cursor[Any], table: str, rows: list[CallRow]) -> None:
    with cursor.copy(_copy_statement(table)) as copy:
        if speedups is not None:
            # The whole COPY (signature, rows, trailer) made in C, sent as one block.
            copy.write(speedups.copy_binary(rows, COPY_KINDS))
            return
        copy.set_types(COLUMN_TYPES)
        write_row = copy.write_row
        for row in rows:
            # A plain tuple: psycopg's row formatter reads a tuple or a list in place and copies
            # any other sequence (a NamedTuple too) into a new list first, which cost several
            # times this copy (valgrind --tool=callgrind on bench_ingest's batches).
            write_row(row[:])


def _insert_staged(cursor: psycopg.Cursor[Any], rows: list[CallRow], *, empty_stage: bool) -> set[CallKey]:
    """COPY into a per-session temporary table, then INSERT ... ON CONFLICT DO NOTHING
    RETURNING, in request_id order: the database reports the rows it really inserted, and a
    row another transaction is inserting is waited for, then skipped."""
    quote = connection.ops.quote_name
    table = _table()
    columns = ", ".join(quote(name) for name in COLUMN_NAMES)
    stage_columns = ", ".join(f"{quote(name)} {kind}" for name, kind in CALL_COLUMNS)
    # One per session, emptied at every commit (and below when an outer transaction holds the
    # commit back). Needs session-level pooling, not a transaction-pooling proxy.
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} ({stage_columns}) ON COMMIT DELETE ROWS")
    _copy_into(cursor, STAGE_TABLE, rows)
    cursor.execute(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGE_TABLE} "  # noqa: S608 - constant names
        "ORDER BY request_id, COALESCE(environment_id, 0) "
        f"ON CONFLICT {CALL_CONFLICT} DO NOTHING {_RETURNING}"
    )
    inserted: set[CallKey] = set(cursor.fetchall())
    if empty_stage:
        cursor.execute(f"DELETE FROM {STAGE_TABLE}")  # noqa: S608 - a constant name
    return inserted


def _insert_portable(rows: list[CallRow]) -> set[CallKey]:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in COLUMN_NAMES)
    placeholder = "(" + ", ".join(["%s"] * len(COLUMN_NAMES)) + ")"
    table = quote(CallRecord._meta.db_table)
    per_statement = 30_000 // len(COLUMN_NAMES)
    returned: set[CallKey] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                params.extend(_portable_values(row))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholder] * len(chunk))} "  # noqa: S608 - values are parameters
                f"ON CONFLICT {CALL_CONFLICT} DO NOTHING {_RETURNING}",
                params,
            )
            returned.update((request_id, environment_id) for request_id, environment_id in cursor.fetchall())
    return returned


def _portable_values(row: CallRow) -> list[Any]:
    """The row's values as parameters of a portable INSERT, datetimes adapted for the backend."""
    values: list[Any] = list(row)
    for position in _DATETIME_POSITIONS:
        values[position] = connection.ops.adapt_datetimefield_value(values[position])
    return values
