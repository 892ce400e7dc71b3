from collections.abc import Callable
from datetime import date, datetime
from typing import Any

CALL_FIELDS: tuple[str, ...]
ROW_FIELDS: tuple[str, ...]

def rows_of(
    calls: list[Any],
    now: datetime,
    attributed_as: dict[str, tuple[Any, ...]],
    unattributed: tuple[Any, ...],
    plan_of: Callable[[str, date, str, str], Any],
    user_hash: Callable[[str], str],
    store_raw_user: bool,
    json_columns: Callable[[Any], tuple[str | None, str | None] | None],
    keep_sample: Callable[[tuple[str, int | None], Any], object],
    row_type: type[Any],
) -> tuple[list[Any], int]: ...
def copy_binary(rows: list[Any], kinds: bytes) -> bytes: ...
def parse_records(
    records: list[Any],
    raw_type: type[Any],
    decode: Callable[[Any], Any],
    decode_errors: type[BaseException],
    fallback: Callable[[Any, int], Any],
    now: datetime,
    latest: datetime,
    known_stop_reasons: frozenset[str],
    fromisoformat: Callable[[str], datetime],
    call_type: type[Any],
) -> tuple[list[Any], dict[int, list[dict[str, str]]], set[str]]: ...
def group_rows(rows: list[Any]) -> dict[Any, list[Any]]: ...
def sort_rows(rows: list[Any]) -> None: ...
def layout(
    stop_index: dict[str, int],
    counters: int,
    calls: int,
    errors: int,
    stop_other: int,
    stop_none: int,
    tokens: int,
    cost: int,
    cost_unknown: int,
    metrics: tuple[str, str],
    error_kind: str,
    stop_kind: str,
    bucket_table: list[int],
    bucket_of: Callable[[float], int],
) -> None: ...
def tally(group: Any, rows: list[Any]) -> None: ...
