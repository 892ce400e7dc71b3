"""Finishing claimed work rows: the conditional UPDATE that keeps only a worker's own claims.

Live scoring and paired replay claim rows under a tick token (a worker's id) and, when their
results are ready, move the claims still held under that token to an end state in the
transaction that stores the results. The UPDATE is the check: a claim retaken meanwhile by
another worker (this one stalled past the stale limit) is not changed, and RETURNING says which
were this worker's, so only their results are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection


def among(ids: Sequence[int]) -> tuple[str, list[Any]]:
    """SQL for `column <among>` and its parameters: PostgreSQL takes the ids as one array
    (thousands of parameters cost it more to parse and plan), SQLite as a parameter list."""
    if connection.vendor == "postgresql":
        return "= ANY(%s)", [list(ids)]
    return f"IN ({', '.join(['%s'] * len(ids))})", list(ids)


def finish_claims(
    *, table: str, key: str, ids: Sequence[int], token: str, claimed: str, state: str, now: datetime
) -> set[int]:
    """Move the rows of `table` whose `key` is in `ids`, held under `token` in state `claimed`,
    to `state` (finished at `now`); returns the keys of the rows this token still held."""
    if not ids:
        return set()
    quote = connection.ops.quote_name
    condition, params = among(ids)
    sql = (
        f"UPDATE {quote(table)} SET state = %s, finished_at = %s "  # noqa: S608 (names only)
        f"WHERE worker = %s AND state = %s AND {quote(key)} {condition} RETURNING {quote(key)}"
    )
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [state, at, token, claimed, *params])
        return {row[0] for row in cursor.fetchall()}
