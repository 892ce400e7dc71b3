"""The documents the evals API's examples show (controlplane.api_docs): the support-golden eval
set of the support-chat flag, its v3 of 200 cases, a Messages API run of flag version 8 on it,
the gate that judged v8 against v7 and the LLM judge's calibration."""

from __future__ import annotations

from typing import Any

CASE: dict[str, Any] = {
    "input": {"messages": [{"role": "user", "content": "Where is my parcel AP-100234?"}]},
    "reference": {
        "tool_calls": [{"name": "lookup_order", "input": {"order_number": "AP-100234"}}],
    },
    "assertions": [],
    "tags": ["tracking", "tool-use"],
}

SCORERS = [
    {"name": "tool_calls", "key": "calls-lookup"},
    {"name": "end_turn", "required": False},
]

EVAL_SET: dict[str, Any] = {
    "key": "support-golden",
    "description": "200 real support questions with the tool calls and answers the team signed off.",
    "surface": "chat",
    "flag": "support-chat",
    "latest_version": 3,
    "created_at": "2026-10-02T11:00:00Z",
}

EVAL_SET_VERSION: dict[str, Any] = {
    "eval_set": "support-golden",
    "number": 3,
    "parent": 2,
    "source": "import",
    "message": "40 refund cases from November's tickets",
    "author": "maria@acme.example",
    "case_count": 200,
    "content_hash": "c41d7e0f2a9b8c3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
    "scorers": SCORERS,
    "created_at": "2026-11-28T10:15:00Z",
}

RUN: dict[str, Any] = {
    "id": 418,
    "flag": "support-chat",
    "version": 8,
    "draft": False,
    "content_hash": "9a0f4c2e7b1d3f5a6c8e0b2d4f6a8c0e1b3d5f7a9c2e4a6b8d0f1c3e5a7b9d2f",
    "eval_set": "support-golden",
    "eval_set_version": 3,
    "scorer_versions": {"calls-lookup": 2, "end_turn": 1},
    "mode": "messages",
    "state": "running",
    "reason": "",
    "batch_id": "",
    "concurrency": 8,
    "cases_total": 200,
    "cases_done": 124,
    "cases_reused": 0,
    "cost_micro_usd": 1843210,
    "progress": {
        "done": 124,
        "total": 200,
        "reused": 0,
        "percent": 62,
        "eta_seconds": 95,
        "cost_micro_usd": 1843210,
        "finished": False,
    },
    "summary": {},
    "created_by": "maria@acme.example",
    "created_at": "2026-12-04T15:05:00Z",
    "started_at": "2026-12-04T15:05:02Z",
    "finished_at": None,
}

RUN_CASE: dict[str, Any] = {
    "position": 1,
    "case_hash": "5e1b7f3a9c0d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f2a4b6c8d0e1f",
    "state": "done",
    "reused": False,
    "passed": True,
    "score": 1.0,
    "error": "",
    "input": CASE["input"],
    "reference": CASE["reference"],
    "output": [
        {
            "type": "tool_use",
            "id": "toolu_01HqN3",
            "name": "lookup_order",
            "input": {"order_number": "AP-100234"},
        }
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 412, "output_tokens": 61, "cache_read_input_tokens": 3072},
    "cost_micro_usd": 14560,
    "latency_ms": 1712,
    "ttft_ms": 640,
    "scores": [
        {
            "scorer": "calls-lookup",
            "scorer_version": 2,
            "score": 1.0,
            "passed": True,
            "error": "",
            "explanation": "lookup_order called with the expected order_number",
            "cost_micro_usd": 0,
        }
    ],
}

VERDICT: dict[str, Any] = {
    "id": 91,
    "version": 8,
    "eval_set": "support-golden",
    "eval_set_version": 3,
    "passed": True,
    "admitted": True,
    "explanation": "97.5 % passed (Wilson lower bound 94.3 % ≥ 92 %); paired difference vs v7 "
    "+1.0 pt, lower bound −1.2 pt above the −2 pt margin.",
    "override": None,
    "run": 418,
    "baseline_run": 377,
    "policy": {"required_pass_rate": 0.92, "margin": 0.02, "version_policy": "latest"},
    "evidence": {"pass_rate": 0.975, "wilson_lower": 0.943, "paired_difference": 0.01},
    "created_at": "2026-12-04T15:09:40Z",
}

GATE_POLICY: dict[str, Any] = {
    "eval_set": "support-golden",
    "version_policy": "latest",
    "pinned_version": None,
    "required_pass_rate": 0.92,
    "margin": 0.02,
    "max_cost_per_case_micro_usd": 20000,
    "max_p95_latency_ms": 6000,
}

GATE: dict[str, Any] = {
    "flag": "support-chat",
    "required": True,
    "detail": "Publishing needs a passing verdict (or an Approver's override).",
    "policy": GATE_POLICY,
    "verdicts": [VERDICT],
}

CANDIDATE: dict[str, Any] = {
    "version": 8,
    "model": "claude-opus-5-5",
    "serving": False,
    "run": 418,
    "active_run": None,
    "cases": 200,
    "passed": 195,
    "pass_rate": 0.975,
    "pass_rate_interval": [0.943, 0.989],
    "paired_difference": {"pairs": 200, "difference": 0.01, "lower": -0.012, "upper": 0.032},
    "per_1000_micro_usd": 14200000,
    "per_1000_no_cache_micro_usd": 31800000,
    "p95_latency_ms": 4180.0,
    "gate": "passed",
    "gate_detail": "v8 passed on support-golden v3.",
    "passes": True,
    "counterfactual": {
        "calls": 41822,
        "output_factor": 1.08,
        "cost_micro_usd": 611400000,
        "per_1000_micro_usd": 14619000,
        "explanation": ["41,822 calls of the last 7 days repriced at claude-opus-5-5's prices."],
    },
    "counterfactual_note": "",
}

COMPARISON: dict[str, Any] = {
    "flag": "support-chat",
    "eval_set": "support-golden",
    "eval_set_version": 3,
    "environment": "production",
    "serving_version": 7,
    "logged_calls": 41822,
    "candidates": [
        {
            **CANDIDATE,
            "version": 7,
            "model": "claude-sonnet-5-5",
            "serving": True,
            "run": 377,
            "passed": 193,
            "pass_rate": 0.965,
            "pass_rate_interval": [0.930, 0.983],
            "paired_difference": None,
            "per_1000_micro_usd": 6900000,
            "per_1000_no_cache_micro_usd": 15200000,
            "p95_latency_ms": 3020.0,
            "gate_detail": "v7 is the serving version.",
            "counterfactual": None,
            "counterfactual_note": "The serving version: its logged cost is the baseline.",
        },
        CANDIDATE,
    ],
    "winner": 7,
    "evidence": "v7 passes at the lowest cost per 1,000 calls ($6.90 against $14.20 for v8).",
    "needing_runs": [],
}

CALIBRATION: dict[str, Any] = {
    "judge": "support-judge",
    "labels": 120,
    "min_kappa": 0.6,
    "min_labels": 100,
    "versions": [
        {
            "version": 2,
            "acting": True,
            "state": "acting",
            "words": "Acting: κ 0.74 on 120 labels (agreement 88 %).",
            "n_labels": 120,
            "agreement": 0.883,
            "kappa": 0.74,
            "computed_at": "2026-12-02T09:30:00Z",
        }
    ],
}
