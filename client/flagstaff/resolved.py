"""`ResolvedConfig`: what one flag resolved to for one context, and how to call Claude with it.

Shared by the client (`flagstaff.client`), the compiled snapshot's per-outcome cache
(`flagstaff.snapshot`) and the Messages wrapper (`flagstaff.messages`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flagstaff.engine import Resolution
from flagstaff.flag_state import FlagState
from flagstaff.render import RenderedRequest, RenderError, render_request

if TYPE_CHECKING:
    from flagstaff.snapshot import CompiledFlag, Snapshot

Reason = Literal["DISABLED", "TARGETING_MATCH", "SPLIT", "STATIC", "DEFAULT", "STALE", "ERROR"]
# OpenFeature error codes.
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
PROVIDER_NOT_READY = "PROVIDER_NOT_READY"
PARSE_ERROR = "PARSE_ERROR"
INVALID_CONTEXT = "INVALID_CONTEXT"
GENERAL = "GENERAL"


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """What one flag resolved to for one context, and where it came from."""

    flag: str
    version: int | None
    """The served config version; None when the content is the caller's default (or absent)."""
    variant: str | None
    reason: Reason
    """The engine's reason; STALE when the snapshot could not be kept fresh; ERROR."""
    evaluation_reason: Reason | None = None
    """The engine's reason even when `reason` is STALE; None for ERROR."""
    arm: str | None = None
    split_id: str | None = None
    environment: str | None = None
    revision: int | None = None
    content_hash: str | None = None
    surface: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    shared_content: Mapping[str, Any] | None = field(default=None, repr=False)
    """The snapshot's own content object, shared between resolutions: never mutate it."""

    @property
    def content(self) -> dict[str, Any] | None:
        """The config content (a fresh copy on each access), or None."""
        return None if self.shared_content is None else copy.deepcopy(dict(self.shared_content))

    @property
    def flag_state(self) -> str | None:
        """The encoded `flag_state` token to log with the call; None for ERROR resolutions."""
        if self.reason == "ERROR" or self.environment is None or self.revision is None:
            return None
        return FlagState(
            self.environment, self.flag, self.version, self.arm, self.split_id, self.revision
        ).encode()

    @property
    def is_beta(self) -> bool:
        """Whether the request must go to `client.beta.messages.create`."""
        if self.shared_content is None:
            return False
        try:
            # Secrets only fill MCP tokens; whether a request is beta never depends on them.
            return render_request(self.shared_content, secrets=lambda name: "unused").beta
        except RenderError:
            return False

    def render(
        self,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        secrets: Callable[[str], str] | None = None,
    ) -> RenderedRequest:
        """Render the content (flagstaff.render); raises RenderError when there is none."""
        if self.shared_content is None:
            raise RenderError(f"flag {self.flag!r} resolved to no config ({self.reason})")
        return render_request(self.shared_content, messages=messages, secrets=secrets)

    def request_kwargs(
        self,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        secrets: Callable[[str], str] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for `messages.create` (or `beta.messages.create` when `is_beta`)."""
        return self.render(messages=messages, secrets=secrets).kwargs


class FlagUnavailable(LookupError):
    """The flag served no config (disabled, unknown, no snapshot) and no `default=` was given."""

    def __init__(self, resolved: ResolvedConfig) -> None:
        detail = resolved.error_message or resolved.reason
        super().__init__(
            f"flag {resolved.flag!r} has no config to call with ({detail}); pass default={{...}}"
        )
        self.resolved = resolved


def resolved_from(
    compiled: CompiledFlag,
    snapshot: Snapshot,
    resolution: Resolution,
    reason: Reason,
    content_hash: str | None,
    content: Mapping[str, Any] | None,
) -> ResolvedConfig:
    """A resolution served from the snapshot, with `reason` (the engine's, or STALE)."""
    return ResolvedConfig(
        flag=compiled.key,
        version=resolution.value_version,
        variant=resolution.variant,
        reason=reason,
        evaluation_reason=resolution.reason,
        arm=resolution.arm,
        split_id=resolution.split_id,
        environment=snapshot.environment,
        revision=snapshot.revision,
        content_hash=content_hash,
        surface=compiled.surface,
        shared_content=content,
    )


def error_result(flag: str, default: Mapping[str, Any] | None, code: str, message: str) -> ResolvedConfig:
    """An ERROR resolution: the caller's default (or no content) with an OpenFeature error code."""
    return ResolvedConfig(
        flag=flag,
        version=None,
        variant=None,
        reason="ERROR",
        error_code=code,
        error_message=message,
        shared_content=default,
    )
