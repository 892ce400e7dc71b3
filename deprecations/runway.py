"""The runway of a retiring model: days left, the notification threshold reached, its severity.

Pure logic, no Django. Anthropic gives at least 60 days' notice before a deprecated model is
retired (reference on the Anthropic API, section 4.2: "Deprecated (still works, not
recommended, has retirement date; >=60 days notice)"); the watch notifies at 60, 30, 14, 7 and 1
days left, each threshold once, with a severity that rises as the runway shortens. A retired
model that still serves is threshold 0: its requests fail, so it is critical at once.
"""

from __future__ import annotations

from datetime import date

THRESHOLDS = (60, 30, 14, 7, 1)
RETIRED = 0
SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_AT = {60: "info", 30: "low", 14: "medium", 7: "high", 1: "critical", RETIRED: "critical"}


def days_left(retires_at: date | None, today: date) -> int | None:
    """Whole days from `today` to the retirement date; negative once it is past, None without one."""
    return None if retires_at is None else (retires_at - today).days


def threshold_reached(*, lifecycle: str, days: int | None) -> int | None:
    """The tightest threshold the runway has reached (RETIRED for a retired model), or None.

    A model first seen with 10 days left reaches 14, not 60 and 30 as well: the thresholds
    already behind it are not notified late. An overdue deprecated model (its date passed,
    the Models API not yet saying retired) stays at 1 day: it can stop working at any time.
    """
    if lifecycle == "retired":
        return RETIRED
    if days is None:
        return None
    reached = [threshold for threshold in THRESHOLDS if days <= threshold]
    return min(reached) if reached else None


def severity(threshold: int) -> str:
    return SEVERITY_AT[threshold]


def severity_rank(name: str) -> int:
    return SEVERITIES.index(name)


def runway_words(*, lifecycle: str, retires_at: date | None, today: date) -> str:
    """The runway as a product owner reads it: "retires in 12 days (2026-12-17)"."""
    if lifecycle == "retired":
        when = f" on {retires_at.isoformat()}" if retires_at else ""
        return f"retired{when}: requests to it fail"
    days = days_left(retires_at, today)
    if retires_at is None or days is None:
        return "no retirement date announced"
    day = retires_at.isoformat()
    if days < 0:
        return f"was due to retire on {day} ({-days} days ago): it can stop working at any time"
    if days == 0:
        return f"retires today ({day})"
    return f"retires in {days} day{'s' if days != 1 else ''} ({day})"
