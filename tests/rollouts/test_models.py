"""What the database itself holds of the rollouts' invariants, whoever writes."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from rollouts.models import Rollout
from tests.rollouts.factories import make_rollout

pytestmark = pytest.mark.django_db


def _copy(rollout: Rollout, **overrides: object) -> Rollout:
    fields: dict[str, object] = {
        "flag": rollout.flag,
        "environment": rollout.environment,
        "baseline": rollout.baseline,
        "candidate": rollout.candidate,
        "tick_interval_seconds": 60,
    }
    fields.update(overrides)
    return Rollout.objects.create(**fields)


def test_rollout__second_active_row_for_the_flag_and_environment__refused_by_the_database() -> None:
    first = make_rollout()

    with pytest.raises(IntegrityError):
        _copy(first)


def test_rollout__candidate_equal_to_baseline__refused_by_the_database() -> None:
    first = make_rollout()

    with pytest.raises(IntegrityError):
        _copy(first, state="aborted", candidate=first.baseline)


def test_rollout__pause_reason_when_not_paused__refused_by_the_database() -> None:
    first = make_rollout()

    with pytest.raises(IntegrityError):
        _copy(first, state="aborted", pause_reason="manual")
