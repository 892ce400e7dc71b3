"""The documents the rollouts API's examples show (controlplane.api_docs): rollout 12 of the
support-chat flag in production, v7 → v8, running its 1 % stage under the chat surface's
default guardrails, with the latest tick's decision."""

from __future__ import annotations

from typing import Any

STAGES = [
    {
        "index": 0,
        "weight": 100,
        "min_duration_seconds": 1800,
        "max_duration_seconds": 14400,
        "min_units_per_arm": 100,
        "min_judged_per_arm": 30,
        "gate": "auto",
        "on_inconclusive": "pause",
        "state": "analyzing",
        "started_at": "2026-12-05T13:00:00Z",
        "ended_at": None,
    },
    {
        "index": 1,
        "weight": 1000,
        "min_duration_seconds": 3600,
        "max_duration_seconds": 43200,
        "min_units_per_arm": 500,
        "min_judged_per_arm": 100,
        "gate": "approval",
        "on_inconclusive": "pause",
        "state": "pending",
        "started_at": None,
        "ended_at": None,
    },
    {
        "index": 2,
        "weight": 10000,
        "min_duration_seconds": 0,
        "max_duration_seconds": 0,
        "min_units_per_arm": 0,
        "min_judged_per_arm": 0,
        "gate": "auto",
        "on_inconclusive": "pause",
        "state": "pending",
        "started_at": None,
        "ended_at": None,
    },
]

GUARDRAIL: dict[str, Any] = {
    "name": "api_error_rate",
    "label": "API error rate",
    "metric": "api_error_rate",
    "kind": "binary",
    "direction": "increase_is_bad",
    "margin": 0.01,
    "relative_margin": False,
    "critical": True,
    "source": "telemetry",
    "may_act": True,
    "scorer": "",
    "quantile": 0.95,
    "cache_sensitive": False,
    "unit": "",
}

DECISION: dict[str, Any] = {
    "tick": 14,
    "stage": 0,
    "action": "hold",
    "reason": "min_duration_not_met",
    "explanation": "Every guardrail is within its margin so far; the stage has run 23 of its 30 minutes.",
    "applied": True,
    "outcome": "held",
    "srm_p_value": 0.41,
    "alpha": 0.05,
    "alpha_critical": 0.01,
    "metrics": [
        {
            "name": "api_error_rate",
            "label": "API error rate",
            "status": "non_inferior",
            "acting": True,
            "critical": True,
            "n_canary": 212,
            "n_control": 208,
            "scorer_errors": [0, 0],
            "margin": 0.01,
            "consecutive": 0,
        }
    ],
    "inputs": {
        "window": {"since": "2026-12-05T13:00:00+00:00", "until": "2026-12-05T13:23:00+00:00"},
        "stage": {"index": 0, "weight": 100, "gate": "auto"},
        "baseline": 7,
        "candidate": 8,
    },
    "inputs_hash": "0d3c9a1f7e5b2d8c4a6f0e1b3d5c7a9f2e4b6d8a0c1e3f5b7d9a2c4e6f8b0d1c",
    "created_at": "2026-12-05T13:23:00Z",
}

ROLLOUT: dict[str, Any] = {
    "id": 12,
    "flag": "support-chat",
    "environment": "production",
    "baseline": 7,
    "candidate": 8,
    "state": "running",
    "pause_reason": "",
    "stage_index": 0,
    "version": 3,
    "split": "split-12",
    "tick_interval_seconds": 60,
    "next_tick_at": "2026-12-05T13:24:00Z",
    "ticks_done": 14,
    "created_by_name": "maria@acme.example",
    "created_at": "2026-12-05T12:58:10Z",
    "ended_at": None,
}

ROLLOUT_DETAIL = {**ROLLOUT, "stages": STAGES, "policy": [GUARDRAIL], "latest_decision": DECISION}
