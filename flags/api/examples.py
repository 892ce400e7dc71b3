"""The documents the flags API's examples show (controlplane.api_docs): one support-chat flag on
Claude Sonnet 5.5, its v7 and v8 (a model swap to Opus 5.5 and a prompt edit), production
serving v7 with a rule for enterprise plans and a 10 % split to v8. Serializers name these in
`extend_schema_serializer(examples=...)`; tests/controlplane/test_schema.py checks each
against its schema and the config content against the validator."""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api_docs import Refusal
from flagstaff.canonical import content_hash

# A change to what a protected environment serves, without a reason (flags.services.guards).
REASON_REQUIRED = Refusal(
    400,
    "reason_required",
    "'production' is a protected environment: give a reason for this change.",
    errors=(("reason", "Required for a change to a protected environment."),),
)

CONFIG_CONTENT: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 4096,
    "system": [
        {
            "type": "text",
            "text": "You are the support assistant of Acme Parcel.\n"
            "Answer from the order data you are given.\n"
            "Hand refunds over $250 to a human.",
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "tools": [
        {
            "name": "lookup_order",
            "description": "Find an order by its number: status, items and delivery date.",
            "input_schema": {
                "type": "object",
                "properties": {"order_number": {"type": "string", "description": "e.g. AP-100234"}},
                "required": ["order_number"],
            },
        }
    ],
    "output_config": {"effort": "medium"},
}


def _candidate_content() -> dict[str, Any]:
    content = copy.deepcopy(CONFIG_CONTENT)
    content["model"] = "claude-opus-5-5"
    content["system"][0]["text"] = content["system"][0]["text"].replace("$250", "$500")
    return content


CANDIDATE_CONTENT = _candidate_content()
CONTENT_HASH_V7 = content_hash(CONFIG_CONTENT)
CONTENT_HASH_V8 = content_hash(CANDIDATE_CONTENT)

ENVIRONMENT: dict[str, Any] = {
    "key": "production",
    "name": "Production",
    "revision": 1043,
    "protected": True,
    "requires_approval": True,
    "created_at": "2026-09-14T08:00:00Z",
}

FLAG_STATE: dict[str, Any] = {
    "environment": "production",
    "enabled": True,
    "serving_version": 7,
    "revision": 1043,
    "updated_at": "2026-12-04T16:20:11Z",
}

FLAG: dict[str, Any] = {
    "key": "support-chat",
    "name": "Support chat",
    "description": "The assistant in the help centre's chat window.",
    "surface": "chat",
    "owner": "support-platform@acme.example",
    "stickiness": "targetingKey",
    "archived": False,
    "created_at": "2026-09-14T08:05:00Z",
    "archived_at": None,
    "latest_version": 8,
    "environments": [
        FLAG_STATE,
        {**FLAG_STATE, "environment": "staging", "serving_version": 8, "revision": 2210},
    ],
}

VERSION: dict[str, Any] = {
    "flag": "support-chat",
    "number": 8,
    "variant": "v8",
    "content_hash": CONTENT_HASH_V8,
    "parent": 7,
    "author": "maria@acme.example",
    "message": "Opus 5.5, refunds up to $500 without a human",
    "warnings": [],
    "checks": [
        {
            "name": "eval-gate",
            "met": True,
            "summary": "gate: passed",
            "detail": "v8 passed the gate on support-golden v3 (97.5 % pass rate, 200 cases).",
        }
    ],
    "created_at": "2026-12-04T15:02:43Z",
    "content": CANDIDATE_CONTENT,
}

VALIDATION_FAILED: dict[str, Any] = {
    "ok": False,
    "errors": [
        {
            "path": "temperature",
            "message": "'temperature' was removed in API version 2026-10-21; the API rejects it at any "
            "value. Remove it, or pin anthropic_version to 2023-06-01 on a model that accepts it.",
            "code": "sampling_param_removed",
        },
        {
            "path": "max_tokens",
            "message": "max_tokens is 200,000, above the output limit of Claude Sonnet 5.5 (128,000).",
            "code": "max_tokens_over_limit",
        },
    ],
    "warnings": [],
}

DIFF: dict[str, Any] = {
    "flag": "support-chat",
    "from": 7,
    "to": 8,
    "changes": [{"path": "model", "old": "claude-sonnet-5-5", "new": "claude-opus-5-5"}],
    "system": [
        {"op": "equal", "old_no": 1, "new_no": 1, "text": "You are the support assistant of Acme Parcel."},
        {"op": "equal", "old_no": 2, "new_no": 2, "text": "Answer from the order data you are given."},
        {"op": "delete", "old_no": 3, "new_no": None, "text": "Hand refunds over $250 to a human."},
        {"op": "insert", "old_no": None, "new_no": 3, "text": "Hand refunds over $500 to a human."},
    ],
    "tools": {"added": [], "removed": [], "changed": [], "reordered": False},
    "mcp_servers": {"added": [], "removed": [], "changed": [], "reordered": False},
    "subagents": {"added": [], "removed": [], "changed": [], "reordered": False},
    "kinds": ["cache_prefix_changed", "model_swap", "prompt_edit"],
    "summary": "Model swap claude-sonnet-5-5 → claude-opus-5-5; prompt edit (+1 −1 lines); "
    "cache prefix changed",
}

ENTERPRISE_CONSTRAINT = {"contextName": "plan", "operator": "IN", "values": ["enterprise"]}

SEGMENT: dict[str, Any] = {
    "key": "beta-testers",
    "name": "Beta testers",
    "description": "Customers who opted into early features.",
    "constraints": [{"contextName": "plan", "operator": "IN", "values": ["beta"]}],
    "created_at": "2026-10-01T09:30:00Z",
    "updated_at": "2026-11-18T14:12:05Z",
}

RULES: dict[str, Any] = {
    "flag": "support-chat",
    "environment": "production",
    "revision": 1043,
    "rules_tag": "6c1d6c0f92d618da",
    "rules": [
        {
            "index": 0,
            "constraints": [ENTERPRISE_CONSTRAINT],
            "segments": [],
            "version": 8,
            "description": "Enterprise plans get the candidate first",
            "everyone": False,
        },
        {
            "index": 1,
            "constraints": [],
            "segments": ["beta-testers"],
            "version": 8,
            "description": "Beta testers",
            "everyone": False,
        },
    ],
}

SPLIT: dict[str, Any] = {
    "flag": "support-chat",
    "environment": "production",
    "serving_version": 7,
    "split": {
        "id": "split-12",
        "kind": "canary",
        "candidate": 8,
        "weight": 1000,
        "seed": "0b20c3992b127531",
        "control": {"from": 1000, "to": 2000},
        "arms": [],
        "created_at": "2026-12-04T16:20:11Z",
        "updated_at": "2026-12-04T16:20:11Z",
    },
}

TRIED: dict[str, Any] = {
    "flag": "support-chat",
    "environment": "production",
    "revision": 1043,
    "version": 8,
    "variant": "v8",
    "reason": "TARGETING_MATCH",
    "arm": None,
    "split_id": None,
    "rule_index": 0,
    "rule": {
        "constraints": [ENTERPRISE_CONSTRAINT],
        "segments": [],
        "version": 8,
        "description": "Enterprise plans get the candidate first",
    },
    "bucket": None,
    "unit": "user-42",
    "content": CANDIDATE_CONTENT,
}

CONTEXT = {"targetingKey": "user-42", "plan": "enterprise", "country": "DE"}

MODEL: dict[str, Any] = {
    "id": "claude-sonnet-5-5",
    "display_name": "Claude Sonnet 5.5",
    "line": "sonnet",
    "lifecycle": "active",
    "deprecated_at": None,
    "retires_at": None,
    "days_to_retirement": None,
    "replacement": "",
    "max_tokens": 128000,
    "context_window": 1000000,
    "capabilities": {
        "effort_levels": ["low", "medium", "high", "xhigh", "max"],
        "thinking_types": ["adaptive", "between_tools", "disabled"],
        "accepts_sampling_params": False,
        "supports_forced_tool_use": False,
        "supports_inference_geo": True,
    },
    "source": "models_api",
    "synced_at": "2026-12-05T06:00:02Z",
    "prices": [
        {
            "token_type": "input",
            "tier": "standard",
            "context": "",
            "usd_per_mtok": "2.000000",
            "effective_from": "2026-06-30",
        },
        {
            "token_type": "output",
            "tier": "standard",
            "context": "",
            "usd_per_mtok": "10.000000",
            "effective_from": "2026-06-30",
        },
        {
            "token_type": "cache_read",
            "tier": "standard",
            "context": "",
            "usd_per_mtok": "0.100000",
            "effective_from": "2026-10-07",
        },
    ],
}

CANDIDATE_FLAG_STATE = "fs1:production:support-chat:8:candidate:split-12:1043"

RESOLVED: dict[str, Any] = {
    "flag": "support-chat",
    "value": CANDIDATE_CONTENT,
    "request": {**CANDIDATE_CONTENT, "extra_headers": {"anthropic-version": "2026-10-21"}},
    "beta": False,
    "variant": "v8",
    "reason": "SPLIT",
    "flag_state": CANDIDATE_FLAG_STATE,
    "metadata": {
        "version": 8,
        "content_hash": CONTENT_HASH_V8,
        "arm": "candidate",
        "split_id": "split-12",
        "rule_index": None,
        "revision": 1043,
        "environment": "production",
    },
}

OFREP_EVALUATION: dict[str, Any] = {
    "key": "support-chat",
    "value": CANDIDATE_CONTENT,
    "reason": "SPLIT",
    "variant": "v8",
    "metadata": {
        "flag_state": CANDIDATE_FLAG_STATE,
        "version": 8,
        "content_hash": CONTENT_HASH_V8,
        "arm": "candidate",
        "split_id": "split-12",
        "revision": 1043,
        "environment": "production",
    },
}

SNAPSHOT: dict[str, Any] = {
    "format": 1,
    "environment": "production",
    "revision": 1043,
    "generated_at": "2026-12-05T14:00:00Z",
    "flags": {
        "support-chat": {
            "key": "support-chat",
            "surface": "chat",
            "stickiness": "targetingKey",
            "enabled": True,
            "version": 7,
            "versions": {"7": CONTENT_HASH_V7, "8": CONTENT_HASH_V8},
            "rules": [{"constraints": [ENTERPRISE_CONSTRAINT], "segments": [], "version": 8}],
            "rollout": {"id": "split-12", "candidate": 8, "weight": 1000, "seed": "0b20c3992b127531"},
            "experiment": None,
        }
    },
    "segments": {},
    "contents": {CONTENT_HASH_V7: CONFIG_CONTENT, CONTENT_HASH_V8: CANDIDATE_CONTENT},
}

APPROVAL: dict[str, Any] = {
    "id": 31,
    "action": "rollout.start",
    "flag": "support-chat",
    "environment": "production",
    "subject": "rollout:12",
    "params": {"rollout": 12},
    "summary": "starting rollout 12 of 'support-chat' in 'production' (v7 → v8)",
    "reason": "CHG-4471: v8 cuts cost per call by a third",
    "author_name": "alice",
    "state": "pending",
    "decided_by_name": "",
    "decided_at": None,
    "decision_reason": "",
    "evidence": {
        "rollout": 12,
        "state": "ready",
        "stage": 0,
        "gate": [{"version": 8, "summary": "passed", "detail": "v8 passes: 92.0 % ...", "verdict": 44}],
        "checklist": {"environment": "production", "ready": True, "red": [], "items": []},
        "latest_decision": None,
    },
    "created_at": "2026-12-05T16:40:00Z",
}
