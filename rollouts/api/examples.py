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

# Experiment 3 of support-chat in production: v7 (baseline) against Opus and Haiku arms, for a
# week, concluded with the Haiku arm as the cheapest that passes.
EXPERIMENT_DECISION: dict[str, Any] = {
    "tick": 168,
    "action": "conclude",
    "reason": "window_ended",
    "explanation": (
        "concluded: haiku is the cheapest arm that passes at $0.00150 per call vs baseline "
        "$0.00400 (2 of 2 candidates pass every guardrail)"
    ),
    "applied": True,
    "outcome": "concluded",
    "cheapest_passing": "haiku",
    "evidence": (
        "haiku: cost per call $0.00150 vs baseline $0.00400; non-inferior on all 2 acting "
        "guardrails; next cheapest passing arm opus at $0.00900"
    ),
    "srm_p_value": 0.62,
    "alpha": 0.05,
    "arms": {
        "opus": {"passes": True, "failing": [], "cost_per_call": 0.009},
        "haiku": {"passes": True, "failing": [], "cost_per_call": 0.0015},
    },
    "inputs": {
        "window": {"since": "2026-11-28T12:00:00+00:00", "until": "2026-12-05T12:00:00+00:00"},
        "arms": {
            "baseline": {"version": 7, "weight": 3400},
            "opus": {"version": 8, "weight": 3300},
            "haiku": {"version": 9, "weight": 3300},
        },
    },
    "inputs_hash": "5f0c2a9e1b7d4c3a8e6f0b2d4a6c8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d",
    "created_at": "2026-12-05T12:00:04Z",
}

EXPERIMENT: dict[str, Any] = {
    "id": 3,
    "flag": "support-chat",
    "environment": "production",
    "baseline": 7,
    "state": "concluded",
    "pause_reason": "",
    "version": 3,
    "split": None,
    "window_seconds": 604800,
    "required_units_per_arm": None,
    "tick_interval_seconds": 3600,
    "next_tick_at": None,
    "ticks_done": 168,
    "started_at": "2026-11-28T12:00:00Z",
    "winner": "haiku",
    "canary": None,
    "created_by_name": "maria@example.com",
    "created_at": "2026-11-28T11:58:12Z",
    "ended_at": "2026-12-05T12:00:04Z",
}

EXPERIMENT_DETAIL: dict[str, Any] = {
    **EXPERIMENT,
    "arms": [
        {"name": "baseline", "version": 7, "weight": 3400},
        {"name": "opus", "version": 8, "weight": 3300},
        {"name": "haiku", "version": 9, "weight": 3300},
    ],
    "policy": [
        {
            "name": "api_error_rate",
            "label": "API error rate",
            "metric": "api_error_rate",
            "kind": "binary",
            "direction": "increase_is_bad",
            "margin": 0.01,
            "critical": True,
        }
    ],
    "goals": [],
    "latency_budgets_ms": {"ttft_p95_ms": 1500, "total_p95_ms": 12000},
    "latest_decision": EXPERIMENT_DECISION,
}

CHECKLIST_ROW: dict[str, Any] = {
    "key": "effort",
    "label": "Effort set explicitly",
    "kind": "computed",
    "required": True,
    "state": "waived",
    "green": True,
    "detail": "v8 leaves output_config.effort to the model's default.",
    "attestation": None,
    "waiver": {"by": "bob", "at": "2026-12-05T12:55:00Z", "note": "Haiku ignores effort; CHG-4471"},
}

CHECKLIST: dict[str, Any] = {
    "environment": "production",
    "ready": False,
    "red": ["tools_deliberate"],
    "policy": "default",
    "checked_at": "2026-12-05T12:58:00Z",
    "items": [
        {
            "key": "eval_gate",
            "label": "Eval gate passed",
            "kind": "computed",
            "required": True,
            "state": "pass",
            "green": True,
            "detail": "v8: gate passed. v8 passes: 92.0 % on support-golden v3.",
            "attestation": None,
            "waiver": None,
        },
        CHECKLIST_ROW,
        {
            "key": "tools_deliberate",
            "label": "Tools deliberate (destructive operations denied)",
            "kind": "attested",
            "required": True,
            "state": "unattested",
            "green": False,
            "detail": "Every tool is there on purpose; destructive operations are denied.",
            "attestation": None,
            "waiver": None,
        },
    ],
}

CHECKLIST_POLICY: dict[str, Any] = {
    "environment": "production",
    "default": False,
    "required": ["eval_gate", "streaming", "request_ids", "tools_deliberate"],
    "updated_by_name": "admin",
    "updated_at": "2026-12-01T09:00:00Z",
    "items": [{"key": "eval_gate", "label": "Eval gate passed", "kind": "computed"}],
}

SIGNOFF: dict[str, Any] = {
    "item": "tools_deliberate",
    "kind": "attested",
    "note": "Reviewed the tool list with the owner: refunds need a human, delete_account is gone",
    "by": "alice",
    "at": "2026-12-05T12:50:00Z",
}

ROLLED_BACK = {
    "flag": "support-chat",
    "environment": "production",
    "motion": "rollout_rolled_back",
    "summary": "Stop serving v8 (rollout 12); everyone in 'production' gets v7 again.",
    "serving_version": 7,
    "rollout": 12,
    "experiment": None,
    "split": "split-31",
    "candidate": 8,
    "revision_before": 1043,
    "revision_after": 1044,
    "incident": 57,
    "rehearsal": False,
}

REHEARSAL = {
    "id": 9,
    "flag": "support-chat",
    "environment": "staging",
    "state": "passed",
    "trigger": "schedule",
    "started_by": "schedule:support-chat/staging",
    "rollout": 14,
    "candidate": 9,
    "threshold_seconds": 5.0,
    "snapshot_seconds": 0.041,
    "stream_seconds": 0.063,
    "probe_seconds": 0.071,
    "clients_connected": 12,
    "clients_reached": 12,
    "outcome": "Passed: the API served revision 88 after 0.041 s, all 12 connected stream clients "
    "had it after 0.063 s, and the probe resolved the baseline for 20 canary units after 0.071 s.",
    "failures": [],
    "steps": [
        {"step": "candidate_created", "at": "2026-12-05T03:00:00.012Z", "detail": "v9, the content of v8"},
        {"step": "canary_started", "at": "2026-12-05T03:00:00.055Z", "detail": "rollout 14 at 1 %"},
        {
            "step": "canary_seen",
            "at": "2026-12-05T03:00:00.180Z",
            "detail": "the probe serves v9 to 20 units",
        },
        {"step": "rolled_back", "at": "2026-12-05T03:00:00.201Z", "detail": "revision 88"},
        {"step": "snapshot_served", "at": "2026-12-05T03:00:00.242Z", "detail": "after 0.041 s"},
        {"step": "streams_reached", "at": "2026-12-05T03:00:00.264Z", "detail": "12 of 12 after 0.063 s"},
        {"step": "probe_on_baseline", "at": "2026-12-05T03:00:00.272Z", "detail": "after 0.071 s"},
    ],
    "incident": None,
    "requested_at": "2026-12-05T03:00:00Z",
    "started_at": "2026-12-05T03:00:00.004Z",
    "finished_at": "2026-12-05T03:00:00.280Z",
}
