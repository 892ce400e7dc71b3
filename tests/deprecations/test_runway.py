from datetime import date

import pytest

from deprecations.runway import RETIRED, days_left, runway_words, severity, severity_rank, threshold_reached

TODAY = date(2026, 12, 5)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (90, None),
        (61, None),
        (60, 60),
        (45, 60),
        (30, 30),
        (14, 14),
        (8, 14),
        (7, 7),
        (2, 7),
        (1, 1),
        (0, 1),
        (-3, 1),
    ],
)
def test_threshold_reached__days_left__tightest_threshold(days: int, expected: int | None) -> None:
    assert threshold_reached(lifecycle="deprecated", days=days) == expected


def test_threshold_reached__retired__retired_threshold_whatever_the_date() -> None:
    assert threshold_reached(lifecycle="retired", days=None) == RETIRED
    assert threshold_reached(lifecycle="retired", days=40) == RETIRED


def test_threshold_reached__no_retirement_date__none() -> None:
    assert threshold_reached(lifecycle="deprecated", days=None) is None


def test_severity__thresholds__escalate_as_the_runway_shortens() -> None:
    ranks = [severity_rank(severity(threshold)) for threshold in (60, 30, 14, 7, 1)]

    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 5
    assert severity(RETIRED) == "critical"


def test_days_left__past_date__negative() -> None:
    assert days_left(date(2026, 12, 1), TODAY) == -4
    assert days_left(None, TODAY) is None


@pytest.mark.parametrize(
    ("lifecycle", "retires_at", "words"),
    [
        ("deprecated", date(2026, 12, 17), "retires in 12 days (2026-12-17)"),
        ("deprecated", date(2026, 12, 6), "retires in 1 day (2026-12-06)"),
        ("deprecated", TODAY, "retires today (2026-12-05)"),
        (
            "deprecated",
            date(2026, 11, 30),
            "was due to retire on 2026-11-30 (5 days ago): it can stop working at any time",
        ),
        ("retired", date(2026, 8, 5), "retired on 2026-08-05: requests to it fail"),
        ("active", None, "no retirement date announced"),
    ],
)
def test_runway_words__each_case__in_words(lifecycle: str, retires_at: date | None, words: str) -> None:
    assert runway_words(lifecycle=lifecycle, retires_at=retires_at, today=TODAY) == words
