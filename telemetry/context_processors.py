"""The open-incident banner shown on every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from telemetry.models.incidents import Incident

BANNER_LIMIT = 3


def open_incidents(request: HttpRequest) -> dict[str, Any]:
    """Open incidents for signed-in users: one query on the partial index of open rows.

    One more row than shown is fetched, so the banner can say "and more" without a COUNT.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    rows = list(
        Incident.objects.open()
        .newest_first()
        .select_related("flag", "environment")
        .only("kind", "summary", "opened_at", "flag__key", "environment__key")[: BANNER_LIMIT + 1]
    )
    return {"open_incidents": rows[:BANNER_LIMIT], "more_open_incidents": len(rows) > BANNER_LIMIT}
