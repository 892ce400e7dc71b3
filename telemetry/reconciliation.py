"""Reconcile our telemetry's cost with Anthropic's cost report, per day and model (no Django).

Our side is what Flagstaff-instrumented calls cost at our price table; theirs is the Admin API
cost report. A gap above the threshold (in percent of the report's figure) is flagged: a price
that changed, calls that bypass the client, an unknown model, or data that has not landed yet.
Priority Tier costs never appear in the cost report, so the caller leaves them out of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

Key = tuple[date, str]  # (UTC day, model; "" for costs without a model)


@dataclass(frozen=True, slots=True)
class ReconciliationRow:
    day: date
    model: str
    ours_usd: Decimal
    theirs_usd: Decimal
    gap_usd: Decimal  # ours - theirs
    gap_percent: Decimal | None  # |gap| / theirs * 100; None when the report has nothing
    flagged: bool


def reconcile(
    ours: Mapping[Key, Decimal], theirs: Mapping[Key, Decimal], *, threshold_percent: Decimal
) -> list[ReconciliationRow]:
    """Rows for every (day, model) either side knows, newest day first, then by model."""
    rows = []
    for day, model in sorted(set(ours) | set(theirs), key=lambda key: (-key[0].toordinal(), key[1])):
        mine, reported = ours.get((day, model), Decimal(0)), theirs.get((day, model), Decimal(0))
        if mine == 0 and reported == 0:
            continue
        gap = mine - reported
        percent = None if reported == 0 else (abs(gap) / reported * 100).quantize(Decimal("0.1"))
        flagged = percent is None or percent > threshold_percent
        rows.append(ReconciliationRow(day, model, mine, reported, gap, percent, flagged))
    return rows
