"""Plain factories for telemetry call records (the wire shape services send) and a priced catalog."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from flags.catalog import seed_catalog
from flags.models import ConfigVersion, Environment
from flagstaff.flag_state import FlagState
from telemetry.price_table import clear_price_cache

_sequence = itertools.count(1)


def make_record(**overrides: Any) -> dict[str, Any]:
    """A successful claude-sonnet-5-5 call with cache reads, timed, unattributed unless given a flag_state."""
    record: dict[str, Any] = {
        "request_id": f"req_{next(_sequence):08d}",
        "model": "claude-sonnet-5-5",
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 200,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 3000,
            "service_tier": "standard",
        },
        "latency_ms": 850,
        "ttft_ms": 210,
    }
    record.update(overrides)
    return record


def flag_state_for(
    environment: Environment,
    version: ConfigVersion,
    *,
    arm: str | None = None,
    split_id: str | None = None,
) -> str:
    return FlagState(
        environment=environment.key,
        flag=version.flag.key,
        version=version.number,
        arm=arm,
        split_id=split_id,
        revision=environment.revision,
    ).encode()


def at(moment: datetime) -> str:
    return moment.isoformat()


def seed_prices() -> None:
    """The catalog seed (models and prices), with the ingest price cache emptied."""
    seed_catalog()
    clear_price_cache()
