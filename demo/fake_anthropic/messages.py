"""POST /v1/messages: validation, the scripted reply, prompt caching and SSE events."""

import hashlib
import json
import math
import secrets
import threading
from typing import Any, NamedTuple

from demo.fake_anthropic.models import find_model
from demo.fake_anthropic.wire import JSON, ApiError, RecordedRequest

SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
# Beta-only fields are "extra inputs" unless `anthropic-beta` names a matching beta.
BETA_FIELDS = {
    "mcp_servers": "mcp-client-",
    "context_management": "context-management-",
    "compaction": "compact-",
}


class Event(NamedTuple):
    name: str
    data: JSON


class Segment(NamedTuple):
    key: str
    tokens: int
    ttl: str | None  # set when the block is a cache breakpoint


class CacheUse(NamedTuple):
    uncached: int
    read: int
    created_5m: int
    created_1h: int


def validate(request: RecordedRequest, version: str, models: list[JSON]) -> JSON:
    """Return the request body once it would pass the real API's checks."""
    body = request.body
    if not isinstance(body, dict):
        raise ApiError(400, "There was an error parsing the body of your request")
    extras = [p for p in SAMPLING_PARAMS if p in body] if version == "2026-10-21" else []
    betas = [b.strip() for b in request.headers.get("anthropic-beta", "").split(",")]
    extras += [
        name
        for name, prefix in BETA_FIELDS.items()
        if name in body and not any(beta.startswith(prefix) for beta in betas)
    ]
    if extras:
        raise ApiError(400, f"{extras[0]}: Extra inputs are not permitted")
    model_id = body.get("model")
    if not isinstance(model_id, str):
        raise ApiError(400, "model: Field required")
    model = find_model(models, model_id)
    if model["lifecycle"] == "retired":
        raise ApiError(404, f"model: {model_id}")
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is not int or max_tokens < 0:
        raise ApiError(400, "max_tokens: Input should be a non-negative integer")
    if (ceiling := model.get("max_tokens")) is not None and max_tokens > ceiling:
        raise ApiError(
            400,
            f"max_tokens: {max_tokens} > {ceiling}, which is the maximum "
            f"allowed number of output tokens for {model_id}",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: Field required")
    for index, turn in enumerate(messages):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str | list)
        ):
            raise ApiError(400, f"messages.{index}: Input should be a valid message")
    return body


def count_tokens(text: str) -> int:
    """Roughly four characters per token, as for English prose."""
    return math.ceil(len(text) / 4)


def reply(script: str | None, body: JSON) -> tuple[str, str]:
    """Return the reply text cut to `max_tokens`, and its natural stop reason."""
    text = script if script is not None else f"You said: {_last_user_text(body)}"
    if count_tokens(text) > body["max_tokens"]:
        return text[: body["max_tokens"] * 4], "max_tokens"
    return text, "end_turn"


def _last_user_text(body: JSON) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            texts = [block.get("text") for block in content if isinstance(block, dict)]
            return " ".join(text for text in texts if isinstance(text, str))
    return ""


def prompt_segments(body: JSON) -> list[Segment]:
    """Flatten tools, system and messages, the order in which the cache prefix grows."""
    blocks: list[tuple[str, Any]] = [("tool", tool) for tool in body.get("tools") or []]
    system = body.get("system")
    blocks += [("system", b) for b in ([system] if isinstance(system, str) else system or [])]
    for message in body["messages"]:
        role, content = message["role"], message["content"]
        blocks += [(role, b) for b in ([content] if isinstance(content, str) else content)]
    segments = []
    for kind, block in blocks:
        if not isinstance(block, dict):
            segments.append(Segment(f"{kind}:{block}", count_tokens(str(block)), None))
            continue
        content = {k: v for k, v in block.items() if k != "cache_control"}
        text = block.get("text")
        segments.append(
            Segment(
                key=json.dumps([kind, content], sort_keys=True),
                tokens=count_tokens(text if isinstance(text, str) else json.dumps(content)),
                ttl=_cache_ttl(block.get("cache_control")),
            )
        )
    # Top-level cache_control ("automatic caching") puts the breakpoint on the last block.
    if (ttl := _cache_ttl(body.get("cache_control"))) is not None and segments:
        segments[-1] = segments[-1]._replace(ttl=ttl)
    return segments


def _cache_ttl(control: Any) -> str | None:
    if control is None:
        return None
    ttl = control.get("ttl", "5m") if isinstance(control, dict) else None
    if ttl not in ("5m", "1h"):
        raise ApiError(400, "cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)


class PromptCache:
    """Remembers cached prefixes: a breakpoint's prefix is written once, then read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: set[str] = set()

    def account(self, model_id: str, segments: list[Segment]) -> CacheUse:
        digest = hashlib.sha256(model_id.encode())
        total = 0
        breakpoints: list[tuple[str, int, str]] = []  # (prefix key, tokens through it, ttl)
        for segment in segments:
            digest.update(segment.key.encode())
            total += segment.tokens
            if segment.ttl is not None:
                breakpoints.append((digest.hexdigest(), total, segment.ttl))
        created = {"5m": 0, "1h": 0}
        with self._lock:
            hits = [i for i, bp in enumerate(breakpoints) if bp[0] in self._prefixes]
            read = breakpoints[hits[-1]][1] if hits else 0
            covered = read
            for key, through, ttl in breakpoints[hits[-1] + 1 if hits else 0 :]:
                created[ttl] += through - covered
                covered = through
                self._prefixes.add(key)
        return CacheUse(total - covered, read, created["5m"], created["1h"])


def usage_body(cache: CacheUse, output_tokens: int, *, sparse: bool) -> JSON:
    if sparse:
        return {"input_tokens": cache.uncached, "output_tokens": output_tokens}
    return {
        "input_tokens": cache.uncached,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache.created_5m + cache.created_1h,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.created_5m,
            "ephemeral_1h_input_tokens": cache.created_1h,
        },
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
    }


def message_body(
    model_id: str, text: str, *, stop_reason: str, stop_details: JSON | None, usage: JSON
) -> JSON:
    return {
        "id": f"msg_{secrets.token_hex(12)}",
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": stop_details,
        "container": None,
        "usage": usage,
    }


def stream_events(message: JSON, error: ApiError | None) -> list[Event]:
    """Replay `message` as SSE events, cut short by `error` after the first delta."""
    usage = message["usage"]
    started = message | {
        "content": [],
        "stop_reason": None,
        "stop_details": None,
        "usage": usage | {"output_tokens": min(1, usage["output_tokens"])},
    }
    events = [Event("message_start", {"type": "message_start", "message": started})]
    for index, block in enumerate(message["content"]):
        empty_block = {"type": "text", "text": ""}
        events += [
            Event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty_block},
            ),
            Event("ping", {"type": "ping"}),
        ]
        text = block["text"]
        size = math.ceil(len(text) / 4)
        for offset in range(0, len(text), size):
            delta = {"type": "text_delta", "text": text[offset : offset + size]}
            events.append(
                Event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
            if error is not None:
                return [*events, Event("error", error.error())]
        events.append(Event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if error is not None:
        return [*events, Event("error", error.error())]
    # message_delta carries cumulative counts; the SDK overwrites its snapshot with them.
    delta_usage = {
        key: usage.get(key)
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "server_tool_use",
        )
    } | {"output_tokens": usage["output_tokens"]}
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": None,
        "stop_details": message["stop_details"],
    }
    return [
        *events,
        Event("message_delta", {"type": "message_delta", "delta": delta, "usage": delta_usage}),
        Event("message_stop", {"type": "message_stop"}),
    ]
