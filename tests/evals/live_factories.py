"""Flags with live scoring policies and sampled calls, stored through telemetry's ingest."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from evals.services import live_scoring
from flags.models import ConfigVersion, Environment
from telemetry.services.ingest import ingest_calls
from tests.factories import FACTORY_ACTOR
from tests.telemetry.call_factories import flag_state_for, make_record

_sequence = itertools.count(1)
CONTAINS_OK = {"name": "contains", "key": "says-ok", "params": {"text": "ok"}}


def make_policy(version: ConfigVersion, *, scorers=None, rates=None, budget: int = 0):
    return live_scoring.set_live_scoring_policy(
        flag=version.flag,
        scorer_specs=scorers if scorers is not None else [CONTAINS_OK],
        sample_rates=rates or {},
        daily_judge_budget_micro_usd=budget,
        actor=FACTORY_ACTOR,
    )


def ingest_samples(
    environment: Environment,
    version: ConfigVersion,
    *,
    texts: list[str],
    at: datetime,
    arm: str | None = None,
) -> None:
    """One sampled call per text, answered with that text."""
    records: list[dict[str, Any]] = [
        make_record(
            request_id=f"live_{next(_sequence):08d}",
            timestamp=at.isoformat(),
            flag_state=flag_state_for(environment, version, arm=arm),
            sample={"input": [{"role": "user", "content": "hi"}], "output": [{"type": "text", "text": text}]},
        )
        for text in texts
    ]
    for start in range(0, len(records), 1000):
        result = ingest_calls(records=records[start : start + 1000], received_at=at)
        assert result.samples_stored == len(records[start : start + 1000]), result
