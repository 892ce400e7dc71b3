"""Formatting for the evals pages: money and shares as people read them (no rules here)."""

from __future__ import annotations

from django import template

from evals.comparisons import usd as format_usd

register = template.Library()
NONE = "\N{EN DASH}"  # how the pages show a missing figure


@register.filter
def usd(micro_usd: int | float | None) -> str:
    """Micro-USD as dollars: 132000 -> "$0.1320"."""
    return format_usd(micro_usd)


@register.filter
def points(share: float | None) -> str:
    """A difference of shares as signed percentage points: 0.0167 -> "+1.7"."""
    return NONE if share is None else f"{share * 100:+.1f}"


@register.filter
def percent(share: float | None) -> str:
    return NONE if share is None else f"{share * 100:.1f} %"
