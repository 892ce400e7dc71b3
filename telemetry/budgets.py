"""Latency and cost budgets: per-surface defaults, per-flag overrides, and the breach test.

Pure logic, no Django: the budget check (telemetry.services.incidents) feeds it measured numbers.

A flag's `budgets` JSON holds only its overrides, e.g.
`{"ttft_p95_ms": 1500, "total_p95_ms": 20000, "daily_cost_usd": "25.00"}`; a key that is absent
falls back to the surface default. Costs are kept as decimal strings so no float rounding creeps in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

TTFT_P95_MS = "ttft_p95_ms"
TOTAL_P95_MS = "total_p95_ms"
DAILY_COST_USD = "daily_cost_usd"
BUDGET_KEYS = (TTFT_P95_MS, TOTAL_P95_MS, DAILY_COST_USD)
LATENCY_KEYS = (TTFT_P95_MS, TOTAL_P95_MS)

# The production latency budgets per surface: what a user of that surface tolerates at p95.
# Typing assist must feel instant (first token), chat must start answering within two seconds,
# agents and long generations are judged on the whole call, batch work in minutes.
SURFACE_DEFAULTS: dict[str, dict[str, int | None]] = {
    "typing_assist": {TTFT_P95_MS: 200, TOTAL_P95_MS: None},
    "chat": {TTFT_P95_MS: 2_000, TOTAL_P95_MS: None},
    "agent": {TTFT_P95_MS: None, TOTAL_P95_MS: 30_000},
    "batch": {TTFT_P95_MS: None, TOTAL_P95_MS: 30 * 60 * 1000},
}
MAX_LATENCY_MS = 24 * 60 * 60 * 1000
MIN_DAILY_COST_USD = Decimal("0.01")
MAX_DAILY_COST_USD = Decimal("10000000")


@dataclass(frozen=True, slots=True)
class Budgets:
    """The budgets in force for one flag; None means no budget for that metric."""

    ttft_p95_ms: int | None
    total_p95_ms: int | None
    daily_cost_usd: Decimal | None
    overridden: frozenset[str]

    def latency(self, key: str) -> int | None:
        value: int | None = getattr(self, key)
        return value

    def source(self, key: str) -> str:
        return "flag" if key in self.overridden else "surface default"

    def as_dict(self) -> dict[str, Any]:
        return {
            TTFT_P95_MS: self.ttft_p95_ms,
            TOTAL_P95_MS: self.total_p95_ms,
            DAILY_COST_USD: None if self.daily_cost_usd is None else str(self.daily_cost_usd),
        }


class BudgetError(ValueError):
    """Overrides that are not valid; `errors` lists `{path, message}` per problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


def surface_defaults(surface: str) -> dict[str, int | None]:
    return dict(SURFACE_DEFAULTS.get(surface, {TTFT_P95_MS: None, TOTAL_P95_MS: None}))


def effective_budgets(surface: str, overrides: Mapping[str, Any]) -> Budgets:
    """The surface defaults with the flag's (already validated) overrides applied."""
    defaults = surface_defaults(surface)
    overridden = frozenset(key for key in BUDGET_KEYS if overrides.get(key) is not None)

    def latency(key: str) -> int | None:
        value = overrides.get(key)
        return int(value) if value is not None else defaults.get(key)

    cost = overrides.get(DAILY_COST_USD)
    return Budgets(
        ttft_p95_ms=latency(TTFT_P95_MS),
        total_p95_ms=latency(TOTAL_P95_MS),
        daily_cost_usd=Decimal(str(cost)) if cost is not None else None,
        overridden=overridden,
    )


def clean_overrides(changes: Mapping[str, Any]) -> dict[str, int | str | None]:
    """Validate a partial update of budget overrides; None means "back to the surface default".

    Latency budgets are whole milliseconds (1 ms to 24 h); the daily cost is a USD amount
    (number or decimal string, above 0), returned as a normalised decimal string.
    """
    errors: list[dict[str, str]] = []
    cleaned: dict[str, int | str | None] = {}
    for key, value in changes.items():
        if key not in BUDGET_KEYS:
            errors.append({"path": key, "message": f"Unknown budget; known: {', '.join(BUDGET_KEYS)}."})
        elif value is None:
            cleaned[key] = None
        elif key in LATENCY_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LATENCY_MS:
                errors.append({"path": key, "message": f"Whole milliseconds from 1 to {MAX_LATENCY_MS}."})
            else:
                cleaned[key] = value
        else:
            amount = _decimal(value)
            if amount is None or not MIN_DAILY_COST_USD <= amount <= MAX_DAILY_COST_USD:
                errors.append(
                    {
                        "path": key,
                        "message": f"A USD amount from {MIN_DAILY_COST_USD} to {MAX_DAILY_COST_USD}.",
                    }
                )
            else:
                cleaned[key] = str(amount.quantize(Decimal("0.01")))
    if errors:
        raise BudgetError(errors)
    return cleaned


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def merge_overrides(current: Mapping[str, Any], cleaned: Mapping[str, int | str | None]) -> dict[str, Any]:
    """Apply cleaned changes to a flag's budgets JSON, keeping keys that are not budgets."""
    merged = dict(current)
    for key, value in cleaned.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """One measured number against its budget."""

    metric: str
    value: float | Decimal | None
    budget: int | Decimal
    source: str

    @property
    def breached(self) -> bool:
        return self.value is not None and self.value > self.budget

    def within_share(self, percent: int) -> bool:
        """Measured, and at most `percent` % of the budget (a recovery, with some margin)."""
        return self.value is not None and float(self.value) * 100 <= float(self.budget) * percent

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": _plain(self.value),
            "budget": _plain(self.budget),
            "budget_source": self.source,
            "breached": self.breached,
        }


def _plain(value: float | Decimal | int | None) -> float | int | str | None:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return round(value, 3)
    return value


def latency_checks(budgets: Budgets, p95_ms: Mapping[str, float | None]) -> list[MetricCheck]:
    """Compare measured p95s (keyed like the budgets) with each latency budget that is set."""
    checks = []
    for key in LATENCY_KEYS:
        budget = budgets.latency(key)
        if budget is not None:
            checks.append(MetricCheck(key, p95_ms.get(key), budget, budgets.source(key)))
    return checks
