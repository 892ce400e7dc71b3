"""The documents the migrations API's examples show (controlplane.api_docs): migration 4 of the
support-chat flag in production, off Claude Sonnet 4.5, whose gate passed and whose rollout is
proposed."""

from __future__ import annotations

from typing import Any

MIGRATION: dict[str, Any] = {
    "id": 4,
    "flag": "support-chat",
    "environment": "production",
    "from_model": "claude-sonnet-4-5-20250929",
    "to_model": "claude-sonnet-5-5",
    "retires_at": "2026-11-30",
    "runway_days": 25,
    "base_version": 7,
    "draft_version": 8,
    "changes": [
        {
            "path": "model",
            "before": "claude-sonnet-4-5",
            "after": "claude-sonnet-5-5",
            "reason": "claude-sonnet-4-5-20250929 is deprecated and retires on 2026-11-30; "
            "the catalog's replacement is claude-sonnet-5-5.",
        },
        {
            "path": "temperature",
            "before": 0.3,
            "after": None,
            "reason": "Claude Sonnet 5.5 rejects 'temperature' (the API answers 400 at any value).",
        },
    ],
    "state": "rollout_drafted",
    "mode": "messages",
    "run": 31,
    "baseline_run": 30,
    "gate": {"passed": True, "explanation": "v8 passes the gate: 96 of 100 cases passed."},
    "failures": {},
    "detail": "v8 passes the gate: 96 of 100 cases passed. Rollout 12 is proposed; a person starts it.",
    "rollout": {"id": 12, "state": "ready"},
    "next_step": "A person starts rollout #12 from its page; nothing reaches traffic until then.",
    "created_by": "alice",
    "created_at": "2026-12-05T09:00:00Z",
    "updated_at": "2026-12-05T09:20:00Z",
}
