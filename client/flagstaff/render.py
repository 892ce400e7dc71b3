"""Render config content (docs/config-content.md) into Messages API keyword arguments."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MCP_CLIENT_BETA = "mcp-client-2025-11-20"
CONTEXT_MANAGEMENT_BETA = "context-management-2025-06-27"
DEFAULT_ANTHROPIC_VERSION = "2026-10-21"
LEGACY_ANTHROPIC_VERSION = "2023-06-01"

# Copied verbatim; control-plane-only fields (anthropic_version, subagents, max_iterations)
# are deliberately absent, and fields the contract does not define are ignored so that an
# older client keeps serving when the server learns a new field.
_PASSTHROUGH_FIELDS = (
    "model",
    "max_tokens",
    "system",
    "cache_control",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
    "service_tier",
    "stop_sequences",
)
_SAMPLING_FIELDS = ("temperature", "top_p", "top_k")


class RenderError(ValueError):
    """Config content cannot be turned into a request."""


@dataclass(frozen=True)
class RenderedRequest:
    """Keyword arguments for `messages.create`, or `beta.messages.create` when `beta`."""

    kwargs: dict[str, Any]
    beta: bool


def environment_secret(name: str) -> str:
    """Resolve a secret reference from the environment variable of that name."""
    return os.environ[name]


def render_request(
    content: Mapping[str, Any],
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    secrets: Callable[[str], str] | None = None,
) -> RenderedRequest:
    """Render config content (and optionally the conversation) into request kwargs."""
    for required in ("model", "max_tokens"):
        if required not in content:
            raise RenderError(f"config content has no {required!r}")
    content = copy.deepcopy(content)
    kwargs: dict[str, Any] = {name: content[name] for name in _PASSTHROUGH_FIELDS if name in content}
    betas = list(content.get("betas") or [])

    if content.get("mcp_servers"):
        kwargs["mcp_servers"] = [
            _render_mcp_server(server, secrets or environment_secret) for server in content["mcp_servers"]
        ]
        betas.append(MCP_CLIENT_BETA)
    if content.get("context_management"):
        betas.append(CONTEXT_MANAGEMENT_BETA)
    else:
        kwargs.pop("context_management", None)
    if betas:
        kwargs["betas"] = list(dict.fromkeys(betas))

    # Pin the version the config was authored for instead of inheriting the SDK's default,
    # which moves with SDK upgrades.
    version = content.get("anthropic_version", DEFAULT_ANTHROPIC_VERSION)
    kwargs["extra_headers"] = {"anthropic-version": version}
    sampling = {name: content[name] for name in _SAMPLING_FIELDS if name in content}
    if sampling:
        if version != LEGACY_ANTHROPIC_VERSION:
            raise RenderError(
                f"{', '.join(sampling)} need anthropic_version {LEGACY_ANTHROPIC_VERSION}, not {version}"
            )
        # SDK 2.x has no sampling keyword arguments; the 2023-06-01 API still accepts them.
        kwargs["extra_body"] = sampling

    if messages is not None:
        kwargs["messages"] = copy.deepcopy(list(messages))
    return RenderedRequest(kwargs=kwargs, beta=bool(betas))


def render_subagent(
    content: Mapping[str, Any],
    name: str,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    secrets: Callable[[str], str] | None = None,
) -> RenderedRequest:
    """Render the nested config of the subagent called `name`."""
    for subagent in content.get("subagents") or []:
        if subagent["name"] == name:
            return render_request(subagent["config"], messages=messages, secrets=secrets)
    raise RenderError(f"config content has no subagent named {name!r}")


def _render_mcp_server(server: Mapping[str, Any], secrets: Callable[[str], str]) -> dict[str, Any]:
    # Built field by field so that only the secret's resolved value, never a stored token,
    # reaches the request.
    rendered = {
        "type": server.get("type", "url"),
        "name": server["name"],
        "url": server["url"],
    }
    secret_name = server.get("authorization_secret")
    if secret_name is None:
        return rendered
    try:
        token = secrets(secret_name)
    except LookupError:
        token = ""
    if not token:
        raise RenderError(f"MCP server {server['name']!r}: secret {secret_name!r} could not be resolved")
    rendered["authorization_token"] = token
    return rendered
