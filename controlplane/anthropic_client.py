"""The one place an Anthropic SDK client is built from settings."""

from __future__ import annotations

import anthropic
from django.conf import settings

from controlplane.errors import DomainError


class AnthropicNotConfigured(DomainError):
    status_code = 409
    code = "anthropic_not_configured"


def make_client(*, max_retries: int = 2) -> anthropic.Anthropic:
    """An SDK client for ANTHROPIC_API_KEY at ANTHROPIC_BASE_URL (the public API by default)."""
    if not settings.ANTHROPIC_API_KEY:
        raise AnthropicNotConfigured("ANTHROPIC_API_KEY is not set; the Anthropic API cannot be called.")
    return anthropic.Anthropic(
        api_key=settings.ANTHROPIC_API_KEY,
        base_url=settings.ANTHROPIC_BASE_URL or None,
        timeout=settings.ANTHROPIC_TIMEOUT_SECONDS,
        max_retries=max_retries,
    )
