"""Attribution of call records: which environment, flag, version and arm a record's flag_state
token names, resolved for a whole batch with one query (telemetry/services/ingest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from flags.models import ConfigVersion, Environment, Flag
from flagstaff.flag_state import FlagState, FlagStateError
from telemetry.records import MAX_INT32, CallInput
from telemetry.services.rollups import execute_binary


@dataclass(frozen=True, slots=True)
class Attribution:
    environment_id: int | None
    flag_id: int | None
    version: int | None
    arm: str
    split_id: str
    revision: int | None
    attributed: bool
    environment_key: str | None


UNATTRIBUTED = Attribution(None, None, None, "", "", None, False, None)


def attribute(tokens: set[str]) -> dict[str, Attribution]:
    """Resolve each distinct flag_state token of the batch, with one query for them all.

    A token that does not decode, or whose numbers do not fit the columns, resolves to
    nothing (its calls are kept unattributed).
    """
    decoded: dict[str, FlagState] = {}
    for token in tokens:
        try:
            state = FlagState.decode(token)
        except FlagStateError:
            continue
        if (state.version is None or 0 < state.version <= MAX_INT32) and 0 <= state.revision < 2**63:
            decoded[token] = state
    if not decoded:
        return {}
    environments, flags, versions = _lookup(
        {state.environment for state in decoded.values()},
        {state.flag for state in decoded.values()},
        {state.version for state in decoded.values() if state.version is not None},
    )
    resolved = {}
    for token, state in decoded.items():
        environment_id = environments.get(state.environment)
        flag_id = flags.get(state.flag)
        known_version = state.version is None or (flag_id, state.version) in versions
        resolved[token] = Attribution(
            environment_id=environment_id,
            flag_id=flag_id,
            version=state.version,
            arm=(state.arm or "")[:32],
            split_id=(state.split_id or "")[:64],
            revision=state.revision,
            attributed=environment_id is not None and flag_id is not None and known_version,
            environment_key=state.environment,
        )
    return resolved


def _lookup(
    environment_keys: set[str], flag_keys: set[str], numbers: set[int]
) -> tuple[dict[str, int], dict[str, int], set[tuple[int, int]]]:
    """Ids of the named environments and flags, and which (flag id, version number) exist.

    Raw SQL: three ORM querysets cost more CPU to build than the database spends answering.
    On PostgreSQL the keys travel as arrays, so the statement's text is the same for every
    batch and is prepared once per connection (no parsing and planning per batch).
    """
    quote = connection.ops.quote_name
    tables = {model: quote(model._meta.db_table) for model in (Environment, Flag, ConfigVersion)}
    # Identifiers are the models' table names; every value is a parameter.
    environment_sql = f"SELECT 'e', key, id, 0 FROM {tables[Environment]} WHERE key"  # noqa: S608
    flag_sql = f"SELECT 'f', key, id, 0 FROM {tables[Flag]} WHERE key"  # noqa: S608
    version_sql = (
        f"SELECT 'v', f.key, v.flag_id, v.number FROM {tables[ConfigVersion]} v "  # noqa: S608
        f"JOIN {tables[Flag]} f ON f.id = v.flag_id WHERE f.key"
    )
    rows: Sequence[tuple[Any, ...]]
    if connection.vendor == "postgresql":
        sql = (
            f"{environment_sql} = ANY(%s::text[]) UNION ALL {flag_sql} = ANY(%s::text[]) "
            f"UNION ALL {version_sql} = ANY(%s::text[]) AND v.number = ANY(%s::int8[])"
        )
        flag_list = list(flag_keys)
        rows = execute_binary(sql, [list(environment_keys), flag_list, flag_list, list(numbers)], fetch=True)
    else:

        def placeholders(values: set[Any]) -> str:
            return ", ".join(["%s"] * len(values))

        parts = [
            f"{environment_sql} IN ({placeholders(environment_keys)})",
            f"{flag_sql} IN ({placeholders(flag_keys)})",
        ]
        params: list[Any] = [*environment_keys, *flag_keys]
        if numbers:
            parts.append(
                f"{version_sql} IN ({placeholders(flag_keys)}) AND v.number IN ({placeholders(numbers)})"
            )
            params += [*flag_keys, *numbers]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            rows = cursor.fetchall()
    environments: dict[str, int] = {}
    flags: dict[str, int] = {}
    versions: set[tuple[int, int]] = set()
    for kind, key, ident, number in rows:
        if kind == "e":
            environments[key] = ident
        elif kind == "f":
            flags[key] = ident
        else:
            versions.add((ident, number))
    return environments, flags, versions


def only_environment(
    calls: list[CallInput],
    attributions: dict[str, Attribution],
    environment: str,
    rejected: dict[int, list[dict[str, str]]],
) -> list[CallInput]:
    """Keep the calls whose flag_state names `environment`; reject the others."""
    kept = []
    for call in calls:
        attribution = attributions.get(call.flag_state) if call.flag_state else None
        if attribution is not None and attribution.environment_key == environment:
            kept.append(call)
            continue
        if not call.flag_state:
            message = f"Is required: this token is bound to environment '{environment}'."
        elif attribution is None:
            message = f"Is not a valid flag_state; this token is bound to environment '{environment}'."
        else:
            message = (
                f"Names environment '{attribution.environment_key}'; this token is bound to '{environment}'."
            )
        index = call.record_index
        rejected[index] = [{"path": f"records[{index}].flag_state", "message": message}]
    return kept
