"""Where rollouts and experiments stand, in words: stage bar, health, what moves traffic now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rollouts.models import Rollout
from rollouts.services import lifecycle, ticks
from rollouts.status import Health, active_changes, describe_splits, rollout_health, stage_bar
from tests.factories import FACTORY_ACTOR
from tests.rollouts.factories import (
    add_calls,
    add_scores,
    make_rollout,
    make_running_experiment,
    make_running_rollout,
    rollout_in,
)

pytestmark = pytest.mark.django_db


def _promote_once(rollout: Rollout) -> Rollout:
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="ok", stage=0)
    rollout.refresh_from_db()
    return rollout


def test_stage_bar__second_of_three_stages__says_the_share_and_marks_done_now_next() -> None:
    rollout = _promote_once(make_running_rollout())

    bar = stage_bar(rollout, rollout.stages.order_by("index"))

    assert bar.summary == "Stage 2 of 3: 10 % of units get v2."
    assert [(step.percent, step.position) for step in bar.steps] == [
        ("1 %", "done"),
        ("10 %", "now"),
        ("100 %", "next"),
    ]
    assert bar.percent_done == 33


def test_stage_bar__promoted__every_unit_gets_the_candidate() -> None:
    rollout = rollout_in("promoted")

    bar = stage_bar(rollout, rollout.stages.order_by("index"))

    assert bar.summary == "Promoted: every unit gets v2."
    assert not any(step.current for step in bar.steps)


@pytest.mark.parametrize(
    ("state", "pause_reason", "action", "level"),
    [
        ("running", "", None, "watch"),
        ("running", "", "promote", "good"),
        ("running", "", "hold", "good"),
        ("running", "", "extend", "watch"),
        ("paused", "health_check_failed", "pause", "bad"),
        ("paused", "manual", None, "watch"),
        ("rolled_back", "", "rollback", "bad"),
        ("promoted", "", "promote", "done"),
    ],
)
def test_rollout_health__state_and_latest_action__level(
    state: str, pause_reason: str, action: str | None, level: str
) -> None:
    assert rollout_health(state, pause_reason, action).level == level


def test_rollout_health__sample_ratio_mismatch__says_so_in_words() -> None:
    assert rollout_health("paused", "health_check_failed", "pause").words == "paused: sample-ratio mismatch"


@pytest.mark.parametrize(
    ("reason", "level", "words"),
    [
        ("awaiting_evidence", "good", "watching: no regression so far"),
        (
            "regression_unconfirmed",
            "watch",
            "watching: a regression seen on one tick, the next must confirm it",
        ),
        (
            "srm_suspected",
            "watch",
            "watching: the traffic split looks off, nothing is promoted until it clears",
        ),
    ],
)
def test_rollout_health__a_hold__says_why_by_its_reason(reason: str, level: str, words: str) -> None:
    assert rollout_health("running", "", "hold", reason) == Health(level, words)


def test_active_changes__a_rollout_and_an_experiment__stage_health_and_latest_explanation() -> None:
    rollout = make_running_rollout()
    for arm in ("candidate", "control"):
        add_calls(rollout, arm=arm, calls=20_000)
        add_scores(rollout, arm=arm, n=20_000, passed=17_000)
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))
    experiment = make_running_experiment()
    rollout_in("rolled_back")

    changes = active_changes()

    assert [(change.kind, change.pk) for change in changes] == [
        ("rollout", rollout.pk),
        ("experiment", experiment.pk),
    ]
    assert changes[0].stage == "stage 2 of 3 · 10 %"
    assert changes[0].health.words == "healthy: the last stage passed"
    assert changes[0].explanation.startswith("promoted: all 2 acting guardrails shown non-inferior")
    assert (changes[1].what, changes[1].stage) == ("v1 against 3 candidates", "4 arms")
    assert changes[1].health.words == "running: no analysis yet"


def test_active_changes__many__a_fixed_number_of_queries(django_assert_num_queries: object) -> None:
    for _ in range(3):
        make_running_rollout()
    make_rollout()

    with django_assert_num_queries(2):  # type: ignore[operator]
        changes = active_changes()

    assert [change.stage for change in changes].count("stage 1 of 3 · 1 %") == 3


def test_describe_splits__a_rollouts_canary__says_canary_and_the_stage() -> None:
    rollout = _promote_once(make_running_rollout())
    experiment = make_running_experiment()
    assert rollout.split is not None
    assert experiment.split is not None

    words = describe_splits([rollout.split, experiment.split])

    assert words == {
        rollout.split_id: "canary, stage 2 of 3",
        experiment.split_id: f"experiment #{experiment.pk}",
    }
