"""The rollout pages: what moves traffic now (live), a rollout (live, with its Roll back button),
the experiment page's arms, and the flag page's words for a rollout's canary."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from controlplane.models import AuditEntry
from flags import services as flag_services
from flags.models import FlagState, Split
from rollouts.models import RollbackRehearsal, Rollout
from rollouts.services import experiments, lifecycle, ticks
from tests.factories import FACTORY_ACTOR, make_environment
from tests.pages import field_errors, logged_in
from tests.rollouts.factories import (
    add_arm_traffic,
    add_calls,
    add_scores,
    make_running_experiment,
    make_running_rollout,
    make_world,
    rollout_in,
)

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db


def poll(user: User, url: str, block: str, **query: str) -> _MonkeyPatchedWSGIResponse:
    """What an open page's htmx poll of its live block (`block`) gets back."""
    return logged_in(user).get(url, query, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=block)


def test_rollout_list__anonymous__sent_to_login(client: Client) -> None:
    response = client.get(reverse("rollouts:list"))

    assert (response.status_code, response["Location"].startswith(reverse("login"))) == (302, True)


def test_rollout_list__viewer__lists_rollouts_with_their_state(viewer: User) -> None:
    rollout = make_running_rollout()

    page = logged_in(viewer).get(reverse("rollouts:list")).content.decode()

    assert reverse("rollouts:detail", args=[rollout.pk]) in page
    assert "Running" in page


def test_rollout_list__a_rehearsals_canary__marked_as_a_rehearsal(viewer: User) -> None:
    rollout = make_running_rollout()
    RollbackRehearsal.objects.create(
        flag=rollout.flag,
        environment=rollout.environment,
        trigger="manual",
        started_by="t",
        threshold_seconds=5,
        rollout=rollout,
    )

    page = logged_in(viewer).get(reverse("rollouts:list")).content.decode()
    row = page[page.index(f'{reverse("rollouts:detail", args=[rollout.pk])}">#{rollout.pk}</a>') :]

    assert ">rehearsal</span>" in row[: row.index("</tr>")]


def test_rollout_detail__after_a_tick__shows_stages_guardrails_and_the_decision(viewer: User) -> None:
    rollout = make_running_rollout()
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))

    page = logged_in(viewer).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert "100 bp" in page
    assert "live pass rate (helpful)" in page
    assert "missing data is never a pass" in page
    assert "Stage 1 of 3: 1 % of units get v2." in page
    assert 'aria-current="step"' in page
    rehearsals = reverse("rollouts:rehearsals", args=[rollout.flag.key, rollout.environment.key])
    assert f'href="{rehearsals}">All rehearsals, rehearse now, schedule</a>' in page


def test_rollout_detail__next_tick_already_past__says_the_analysis_is_due_now(viewer: User) -> None:
    rollout = make_running_rollout()
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))
    rollout.refresh_from_db()
    url = reverse("rollouts:detail", args=[rollout.pk])

    ahead = logged_in(viewer).get(url).content.decode()
    Rollout.objects.filter(pk=rollout.pk).update(next_tick_at=timezone.now() - timedelta(seconds=1))
    late = logged_in(viewer).get(url).content.decode()

    assert f"next analysis at {rollout.next_tick_at:%H:%M:%S} UTC" in ahead
    assert ("next analysis due now" in late, "next analysis at" in late) == (True, False)


def _healthy_tick(rollout: Rollout) -> None:
    for arm in ("candidate", "control"):
        add_calls(rollout, arm=arm, calls=20_000, latency_ms=900)
        add_scores(rollout, arm=arm, n=20_000, passed=17_000)
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))


def test_rollout_detail__running_with_traffic__charts_decision_and_polling(viewer: User) -> None:
    rollout = make_running_rollout()
    _healthy_tick(rollout)

    page = logged_in(viewer).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert 'id="chart-pass_rate_helpful"' in page
    assert 'id="chart-latency_p95"' in page
    assert 'data-source="chart-error_rate"' in page
    assert "Promoted: all 2 acting guardrails shown non-inferior" in page
    assert 'hx-trigger="every 3s"' in page
    assert "Stage 2 of 3: 10 % of units get v2." in page


def test_rollout_detail__htmx_poll__answers_only_the_live_part(viewer: User) -> None:
    rollout = make_running_rollout()
    _healthy_tick(rollout)

    response = poll(viewer, reverse("rollouts:detail", args=[rollout.pk]), "rollout_live")

    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="rollout_live"')
    assert "Stage 2 of 3" in fragment
    assert "<html" not in fragment
    assert 'name="reason"' not in fragment  # the Roll back form stays, with what is typed in it


@contextmanager
def _not_called(module: str, names: tuple[str, ...]) -> Iterator[None]:
    """Each named helper of the view module fails the test if the request calls it."""
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch(f"{module}.{name}", side_effect=AssertionError(f"{name} called")))
        yield


def test_rollout_detail__htmx_poll__leaves_out_what_only_the_whole_page_shows(viewer: User) -> None:
    rollout = make_running_rollout()
    _healthy_tick(rollout)
    url = reverse("rollouts:detail", args=[rollout.pk])

    with ExitStack() as refused:
        for name in (
            "checklist_context",
            "controls_context",
            "rehearsal_panel",
            "scheduled_for",
            "replay_status",
        ):
            refused.enter_context(
                mock.patch(f"rollouts.views.rollouts.{name}", side_effect=AssertionError(f"{name} on a poll"))
            )
        response = poll(viewer, url, "rollout_live")

    assert response.status_code == 200
    assert "Stage 2 of 3" in response.content.decode()


def test_rollout_detail__poll_after_the_state_changed__page_reloaded(viewer: User) -> None:
    rollout = make_running_rollout()
    page = logged_in(viewer).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()
    assert """hx-vals='{"seen": "running:0"}'""" in page
    lifecycle.pause_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="look")
    url = reverse("rollouts:detail", args=[rollout.pk])

    stale = poll(viewer, url, "rollout_live", seen="running:0")
    current = poll(viewer, url, "rollout_live", seen="paused:0")

    assert stale.headers["HX-Refresh"] == "true"
    assert "HX-Refresh" not in current.headers
    assert current.content.decode().lstrip().startswith('<div id="rollout_live"')


def test_rollout_detail__poll_after_a_promotion__page_reloaded(viewer: User) -> None:
    """Promote in the Controls (outside the live part) names the next stage: after the analysis
    promoted, the page reloads so that it names the one after."""
    rollout = make_running_rollout()
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="passed", stage=0)
    url = reverse("rollouts:detail", args=[rollout.pk])

    stale = poll(viewer, url, "rollout_live", seen="running:0")

    assert stale.headers["HX-Refresh"] == "true"


def test_rollout_detail__poll_url__keeps_the_log_page_and_drops_the_state_sent(viewer: User) -> None:
    rollout = make_running_rollout()
    url = reverse("rollouts:detail", args=[rollout.pk])

    fragment = poll(viewer, url, "rollout_live", page="2", seen="running:0")

    assert f'hx-get="{url}?page=2"' in fragment.content.decode()


def test_rollout_detail__rolled_back__stops_polling_and_says_nothing_to_roll_back(editor: User) -> None:
    rollout = rollout_in("rolled_back")

    page = logged_in(editor).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert "hx-trigger" not in page
    assert "Nothing to roll back: this rollout is rolled back." in page
    assert "Rolled back: the candidate is off traffic." in page
    assert 'name="reason"' not in page  # no disabled form: where to go instead
    assert f'href="{reverse("rollouts:list")}?flag={rollout.flag.key}">start a new rollout of' in page


def test_rollout_detail__promoted__points_to_the_flags_roll_back_page(editor: User) -> None:
    rollout = rollout_in("promoted")

    page = logged_in(editor).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert "Nothing to roll back: this rollout is promoted." in page
    rollback_page = reverse("rollouts:rollback", args=[rollout.flag.key, rollout.environment.key])
    assert f'href="{rollback_page}"' in page
    assert 'name="reason"' not in page


def test_rollout_detail__viewer__roll_back_shown_disabled_with_the_reason(viewer: User) -> None:
    rollout = make_running_rollout()

    page = logged_in(viewer).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert "Rolling back needs the Editor role." in page
    assert '<button type="submit" class="btn btn-danger" disabled>Roll back</button>' in page


def test_rollout_detail__ready__no_roll_back_form_and_abort_named_instead(editor: User) -> None:
    rollout = rollout_in("ready")

    page = logged_in(editor).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert 'name="reason" id="id_rollback_reason"' not in page
    assert "Its candidate is not on traffic yet; to give it up, use Abort under Controls." in page


def test_rollout_rollback__ready__409_and_an_earlier_promotion_left_alone(editor: User) -> None:
    promoted = rollout_in("promoted")
    again = lifecycle.create_rollout(
        flag=promoted.flag,
        environment=promoted.environment,
        candidate=promoted.baseline.number,
        actor=FACTORY_ACTOR,
    )
    serving = promoted.candidate.number

    response = logged_in(editor).post(
        reverse("rollouts:rollout-rollback", args=[again.pk]), {"reason": "oops"}
    )

    again.refresh_from_db()
    state = FlagState.objects.select_related("serving_version").get(
        flag=promoted.flag, environment=promoted.environment
    )
    assert state.serving_version is not None
    assert (response.status_code, state.serving_version.number) == (409, serving)
    assert "To give it up, abort it." in html.unescape(response.content.decode())


def test_rollout_rollback__editor__candidate_off_traffic_in_one_motion(editor: User) -> None:
    rollout = make_running_rollout()

    response = logged_in(editor).post(
        reverse("rollouts:rollout-rollback", args=[rollout.pk]), {"reason": "users complain"}
    )

    rollout.refresh_from_db()
    assert response.status_code == 302
    assert rollout.state == "rolled_back"
    assert not Split.objects.active().exists()
    entry = AuditEntry.objects.filter(action="rollout.rolled_back").get()
    assert (entry.reason, entry.actor_name) == ("users complain", editor.username)
    page = logged_in(editor).get(response["Location"]).content.decode()
    assert f"Rolled back by {editor.username} at " in page
    assert ": users complain." in page


def test_rollout_rollback__viewer__403_and_nothing_changed(viewer: User) -> None:
    rollout = make_running_rollout()

    response = logged_in(viewer).post(
        reverse("rollouts:rollout-rollback", args=[rollout.pk]), {"reason": "no"}
    )

    rollout.refresh_from_db()
    assert (response.status_code, rollout.state) == (403, "running")


def test_rollout_rollback__anonymous__sent_to_login(client: Client) -> None:
    rollout = make_running_rollout()

    response = client.post(reverse("rollouts:rollout-rollback", args=[rollout.pk]))

    rollout.refresh_from_db()
    assert (response.status_code, rollout.state) == (302, "running")


def test_rollout_rollback__protected_without_a_reason__400_and_nothing_changed(editor: User) -> None:
    world = make_world()
    rollout = make_running_rollout(world)
    flag_services.set_environment_protected(
        environment=world.environment, protected=True, actor=FACTORY_ACTOR
    )

    response = logged_in(editor).post(
        reverse("rollouts:rollout-rollback", args=[rollout.pk]), {"reason": "  "}
    )

    rollout.refresh_from_db()
    assert (response.status_code, rollout.state) == (400, "running")
    assert "is protected: say why you roll back" in response.content.decode()
    assert Split.objects.active().exists()


def test_rollout_rollback__already_promoted__409_with_the_reason_and_nothing_changed(editor: User) -> None:
    rollout = rollout_in("promoted")

    response = logged_in(editor).post(
        reverse("rollouts:rollout-rollback", args=[rollout.pk]), {"reason": "late"}
    )

    rollout.refresh_from_db()
    assert (response.status_code, rollout.state) == (409, "promoted")
    assert "Nothing to roll back" in response.content.decode()


def test_rollout_rollback__get__405(editor: User) -> None:
    rollout = make_running_rollout()

    assert logged_in(editor).get(reverse("rollouts:rollout-rollback", args=[rollout.pk])).status_code == 405


def test_rollout_list__htmx_poll__answers_what_moves_traffic_now(viewer: User) -> None:
    rollout = make_running_rollout()
    experiment = make_running_experiment()

    response = logged_in(viewer).get(
        reverse("rollouts:list"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="active"
    )

    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<section class="card card-flush" id="active"')
    assert f"Rollout #{rollout.pk}" in fragment
    assert f"Experiment #{experiment.pk}" in fragment
    assert "stage 1 of 3 · 1 %" in fragment
    assert "Every rollout" not in fragment


def test_rollout_list__nothing_active__says_so(viewer: User) -> None:
    rollout_in("aborted")

    page = logged_in(viewer).get(reverse("rollouts:list")).content.decode()

    assert "No rollout or experiment is moving traffic now." in page


def test_flag_detail__a_rollouts_canary__says_what_each_environment_serves_and_the_stage(
    viewer: User,
) -> None:
    world = make_world(key="support-chat")
    rollout = make_running_rollout(world)
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="ok", stage=0)
    flag_services.set_flag_enabled(
        flag=world.flag, environment=world.environment, enabled=True, actor=FACTORY_ACTOR
    )
    staging = make_environment(key="staging-x")
    flag_services.publish_version(flag=world.flag, environment=staging, number=2, actor=FACTORY_ACTOR)
    flag_services.set_flag_enabled(flag=world.flag, environment=staging, enabled=True, actor=FACTORY_ACTOR)

    page = logged_in(viewer).get(reverse("flags:detail", args=["support-chat"])).content.decode()

    assert "everyone → <strong>v1 to 90 %, v2 to 10 % (canary, stage 2 of 3)</strong>" in page
    assert "everyone → <strong>v2</strong>" in page  # staging serves v2, no split there


def test_rollout_detail__anonymous__sent_to_login(client: Client) -> None:
    rollout = make_running_rollout()

    response = client.get(reverse("rollouts:detail", args=[rollout.pk]))

    assert response.status_code == 302


def test_rollout_detail__unknown__404(viewer: User) -> None:
    assert logged_in(viewer).get(reverse("rollouts:detail", args=[999])).status_code == 404


def test_experiment_list__anonymous__sent_to_login(client: Client) -> None:
    response = client.get(reverse("rollouts:experiments"))

    assert (response.status_code, response["Location"].startswith(reverse("login"))) == (302, True)


def test_experiment_list__viewer__lists_experiments_with_their_state(viewer: User) -> None:
    experiment = make_running_experiment()

    page = logged_in(viewer).get(reverse("rollouts:experiments")).content.decode()

    assert reverse("rollouts:experiment", args=[experiment.pk]) in page
    assert "Running" in page


def test_experiment_detail__concluded__arms_side_by_side_and_the_cheapest_that_passes_marked(
    viewer: User,
) -> None:
    experiment = make_running_experiment(
        policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.1}]
    )
    for arm, passed, cost in (
        ("baseline", 850, 0.004),
        ("haiku", 850, 0.0015),
        ("sonnet", 860, 0.003),
        ("short", 600, 0.0008),
    ):
        add_arm_traffic(experiment, arm=arm, calls=1000, passed=passed, cost_usd=cost)
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="enough")

    page = logged_in(viewer).get(reverse("rollouts:experiment", args=[experiment.pk])).content.decode()

    cards = page[
        page.index('<div class="arm-cards">') : page.index(
            "</section>", page.index('<div class="arm-cards">')
        )
    ]
    names = ("baseline", "haiku", "sonnet", "short")
    assert [cards.index(f'aria-label="Arm {name}"') for name in names] == sorted(
        cards.index(f'aria-label="Arm {name}"') for name in names
    )
    assert cards.count("cheapest that passes") == 1
    assert 'class="card arm-card arm-cheapest" aria-label="Arm haiku"' in cards
    assert "hx-trigger" not in page  # concluded: nothing moves any more
    assert "$0.00150" in page
    assert "fails: live_pass_rate:helpful" in page
    assert "concluded: haiku is the cheapest arm that passes" in page
    assert "ends after 1 hour" in page


def test_experiment_detail__htmx_poll__the_live_part_without_checklist_or_controls(viewer: User) -> None:
    experiment = make_running_experiment()
    url = reverse("rollouts:experiment", args=[experiment.pk])

    with _not_called("rollouts.views.experiments", ("checklist_context", "controls_context")):
        response = poll(viewer, url, "experiment_live")

    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<div id="experiment_live"')
    assert 'aria-label="Arm baseline"' in fragment


def test_experiment_detail__poll_after_the_state_changed__page_reloaded(viewer: User) -> None:
    experiment = make_running_experiment()
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="enough")
    url = reverse("rollouts:experiment", args=[experiment.pk])

    stale = poll(viewer, url, "experiment_live", seen="running")

    assert stale.headers["HX-Refresh"] == "true"


def test_rollout_create__editor__draft_or_ready_rollout_and_its_page(editor: User) -> None:
    world = make_world()
    form = {"flag": world.flag.key, "environment": world.environment.key, "candidate": 2, "reason": "v2"}

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    rollout = Rollout.objects.get(flag=world.flag)
    assert response.status_code == 302
    assert response["Location"] == reverse("rollouts:detail", args=[rollout.pk])
    assert (rollout.candidate.number, rollout.state, rollout.split_id) == (2, "ready", None)
    assert AuditEntry.objects.filter(action="rollout.created", target_id=str(rollout.pk)).exists()


def test_rollout_create__candidate_is_the_serving_version__400_at_the_field_and_nothing_created(
    editor: User,
) -> None:
    world = make_world()
    form = {"flag": world.flag.key, "environment": world.environment.key, "candidate": 1}

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    assert response.status_code == 400
    assert "must differ from the serving version" in response.content.decode()
    assert not Rollout.objects.exists()


def test_rollout_create__plan_of_its_own__its_stages_guardrails_and_interval(editor: User) -> None:
    world = make_world()
    stages = [{"weight": 1000, "min_duration_seconds": 0, "min_units_per_arm": 10}, {"weight": 10000}]
    policy = [{"metric": "api_error_rate", "margin": 0.01, "critical": True}]
    form = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": 2,
        "stages": json.dumps(stages),
        "policy": json.dumps(policy),
        "tick_interval_seconds": 1,
    }

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    rollout = Rollout.objects.get(flag=world.flag)
    assert response.status_code == 302
    assert list(rollout.stages.order_by("index").values_list("weight", "min_units_per_arm")) == [
        (1000, 10),
        (10000, 100),
    ]
    assert list(rollout.guardrails.values_list("metric", "margin", "critical")) == [
        ("api_error_rate", 0.01, True)
    ]
    assert rollout.tick_interval_seconds == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stages", "[{weight: 1000}]", "Enter a valid JSON."),
        ("stages", "[1000, 10000]", "A JSON list of stages, one object each"),
        ("policy", '{"metric": "api_error_rate"}', "A JSON list of guardrails, one object each"),
        ("stages", '[{"weight": 6000}, {"weight": 10000}]', "stages[0].weight: a stage above 5000"),
        ("policy", '[{"metric": "mean_tokens"}]', "policy[0].metric: "),
        ("tick_interval_seconds", "0", "greater than or equal to 1"),
    ],
)
def test_rollout_create__plan_not_valid__400_at_its_field_and_nothing_created(
    editor: User, field: str, value: str, message: str
) -> None:
    world = make_world()
    form = {"flag": world.flag.key, "environment": world.environment.key, "candidate": 2, field: value}

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    page = response.content.decode()
    assert response.status_code == 400
    assert (
        '<details id="rollout-plan" class="plan-fields stack" open>' in page
    )  # the plan's errors are shown unfolded
    assert html.escape(message, quote=True) in field_errors(page, field)
    assert not Rollout.objects.exists()


def test_rollout_create__stage_editor__percentages_and_minutes_become_the_stages(editor: User) -> None:
    world = make_world()
    form = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": 2,
        "stage_percents": "1, 10 %, 50, 100",
        "stage_minutes": "5",
    }

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    rollout = Rollout.objects.get(flag=world.flag)
    assert response.status_code == 302
    stages = rollout.stages.order_by("index").values_list(
        "weight", "min_duration_seconds", "max_duration_seconds", "min_units_per_arm"
    )
    assert list(stages) == [
        (100, 300, 4 * 3600, 100),
        (1000, 300, 12 * 3600, 500),
        (5000, 300, 12 * 3600, 500),
        (10000, 0, 0, 0),
    ]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"stage_percents": "1, ten, 100"}, "stage_percents", "'ten' is not a percentage."),
        ({"stage_percents": "0, 100"}, "stage_percents", "'0': each stage is above 0 and at most 100 %"),
        (
            {"stage_percents": "1, 60, 100"},
            "stage_percents",
            "Stage 2 (60 %): a stage above 5000 basis points",
        ),
        ({"stage_percents": "10, 5, 100"}, "stage_percents", "Stage 2 (5 %): must be above the previous"),
        ({"stage_minutes": "30", "stage_max_minutes": "10"}, "stage_max_minutes", "At least the minimum"),
    ],
)
def test_rollout_create__stage_editor_not_valid__400_at_its_field_and_nothing_created(
    editor: User, form: dict[str, str], field: str, message: str
) -> None:
    world = make_world()
    form = {"flag": world.flag.key, "environment": world.environment.key, "candidate": "2", **form}

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    page = response.content.decode()
    assert response.status_code == 400
    assert '<details id="rollout-plan" class="plan-fields stack" open>' in page
    assert html.escape(message, quote=True) in field_errors(page, field)
    assert not Rollout.objects.exists()


def test_rollout_create__stage_editor_and_json_both__400_and_nothing_created(editor: User) -> None:
    world = make_world()
    form = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": 2,
        "stage_percents": "1, 100",
        "stages": json.dumps([{"weight": 1000}, {"weight": 10000}]),
    }

    response = logged_in(editor).post(reverse("rollouts:create"), form)

    assert response.status_code == 400
    assert "either in the stage fields or as JSON, not both" in response.content.decode()
    assert not Rollout.objects.exists()


def test_rollout_create__viewer__403_and_no_form_on_the_list(viewer: User) -> None:
    world = make_world()
    form = {"flag": world.flag.key, "environment": world.environment.key, "candidate": 2}

    refused = logged_in(viewer).post(reverse("rollouts:create"), form)
    page = logged_in(viewer).get(reverse("rollouts:list")).content.decode()

    assert refused.status_code == 403
    assert not Rollout.objects.exists()
    assert 'id="new-rollout"' not in page


def test_rollout_list__editor__offers_the_new_rollout_form(editor: User) -> None:
    page = logged_in(editor).get(reverse("rollouts:list") + "?flag=support-chat").content.decode()
    assert 'id="new-rollout"' in page
    assert 'action="/rollouts/new/"' in page
