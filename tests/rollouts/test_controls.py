"""The controls block of the rollout and experiment pages (rollouts/views/controls.py): the verbs
a state allows and a role grants, each run through the same services as the API, a reason asked
for in a protected environment, four eyes where the environment wants them, refusals in words."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from controlplane.models import AuditEntry
from flags import services as flag_services
from rollouts.models import ExperimentState, PauseReason, Rollout, RolloutState
from rollouts.services import experiments, lifecycle
from tests.factories import FACTORY_ACTOR, client_for
from tests.rollouts.factories import add_arm_traffic, make_running_experiment, rollout_in

pytestmark = pytest.mark.django_db


def words(response_body: bytes) -> str:
    """The page's text with its whitespace collapsed, entities decoded."""
    return " ".join(html.unescape(response_body.decode()).split())


def page_of(client: Client, rollout: Rollout) -> str:
    return words(client.get(reverse("rollouts:detail", args=[rollout.pk])).content)


def post(
    client: Client, rollout: Rollout, verb: str, reason: str = "checked by hand", **fields: object
) -> str:
    """The form as the page sends it: the reason, and the stage the page showed (by default the
    rollout's stage now)."""
    fresh = Rollout.objects.get(pk=rollout.pk)
    data = {"reason": reason, "stage": fresh.stage_index, **fields}
    response = client.post(reverse(f"rollouts:rollout-{verb}", args=[rollout.pk]), data, follow=True)
    assert response.status_code == 200
    return words(response.content)


def test_running_rollout__editor__pause_and_abort_offered_promote_needs_an_approver(editor: User) -> None:
    rollout = rollout_in("running")

    page = page_of(client_for(editor), rollout)

    assert 'id="control-pause"' in page
    assert 'id="control-abort"' in page
    assert 'id="control-promote"' not in page
    assert "Promote needs the Approver role." in page


def test_running_rollout__viewer__no_buttons_and_why(viewer: User) -> None:
    rollout = rollout_in("running")

    page = page_of(client_for(viewer), rollout)

    assert 'id="control-' not in page
    assert "Pause and Abort need the Editor role; Promote needs the Approver role." in page


def test_pause_then_resume__the_states_the_api_gives_and_said_in_words(editor: User) -> None:
    rollout = rollout_in("running")
    client = client_for(editor)

    paused = post(client, rollout, "pause")
    rollout.refresh_from_db()
    assert (rollout.state, rollout.pause_reason) == (RolloutState.PAUSED, PauseReason.MANUAL)
    assert "Paused: traffic stays as it is" in paused
    assert 'id="control-resume"' in paused

    resumed = post(client, rollout, "resume")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    assert "Resumed: the analysis runs again" in resumed
    entry = AuditEntry.objects.filter(action="rollout.resumed").latest("id")
    assert entry.reason == "checked by hand"


def test_promote__approver__next_stage_and_the_page_says_where(approver: User) -> None:
    rollout = rollout_in("running")
    client = client_for(approver)
    assert "<strong>Promote:</strong> Move to stage 2: v2 to 10 % now" in page_of(client, rollout)

    answer = post(client, rollout, "promote")

    rollout.refresh_from_db()
    assert (rollout.state, rollout.stage_index) == (RolloutState.RUNNING, 1)
    assert "Promoted to stage 2 of 3." in answer


def test_promote__from_the_last_stage__the_candidate_serves_everyone(approver: User) -> None:
    rollout = rollout_in("running")
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="ok", stage=0)
    client = client_for(approver)
    assert "<strong>Promote:</strong> Make v2 the serving version for everyone now" in page_of(
        client, rollout
    )

    answer = post(client, rollout, "promote")

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED
    assert "Promoted: v2 serves everyone" in answer
    assert 'id="control-' not in answer


def test_promote__the_analysis_moved_on_since_the_page_was_read__no_second_promotion(approver: User) -> None:
    rollout = rollout_in("running")
    shown = rollout.stage_index
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="the tick", stage=0)

    post(client_for(approver), rollout, "promote", stage=shown)

    rollout.refresh_from_db()
    assert (rollout.state, rollout.stage_index) == (RolloutState.RUNNING, 1)


def test_promote__no_stage_in_the_form__refused_in_words(approver: User) -> None:
    rollout = rollout_in("running")

    answer = post(client_for(approver), rollout, "promote", stage="")

    rollout.refresh_from_db()
    assert rollout.stage_index == 0
    assert "Which stage to promote from is missing" in answer


def test_paused_awaiting_approval__says_the_stage_waits_for_an_approver(approver: User) -> None:
    rollout = rollout_in("running")
    lifecycle.pause_rollout(
        rollout=rollout, actor=FACTORY_ACTOR, reason="gate", pause_reason=PauseReason.AWAITING_APPROVAL
    )

    page = page_of(client_for(approver), rollout)

    assert "This stage passed and waits for an Approver." in page
    assert 'class="btn btn-primary" formaction="' in page


def test_abort__draft__given_up_and_the_page_points_to_a_new_rollout(editor: User) -> None:
    rollout = rollout_in("draft")

    answer = post(client_for(editor), rollout, "abort")

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ABORTED
    assert "Aborted: the candidate is off traffic" in answer
    assert "start a new rollout of" in answer


def test_protected_environment__no_reason__refused_and_nothing_changed(editor: User) -> None:
    rollout = rollout_in("running")
    flag_services.set_environment_protected(
        environment=rollout.environment, protected=True, actor=FACTORY_ACTOR
    )

    answer = post(client_for(editor), rollout, "pause", reason="")

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    assert "is protected: say why you pause it." in answer


def test_verb_the_state_does_not_allow__refused_in_words(editor: User) -> None:
    rollout = rollout_in("promoted")

    answer = post(client_for(editor), rollout, "pause")

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED
    assert "cannot pause" in answer


def test_viewer_post__403_and_nothing_changed(viewer: User) -> None:
    rollout = rollout_in("running")

    response = client_for(viewer).post(reverse("rollouts:rollout-pause", args=[rollout.pk]), {"reason": "x"})

    rollout.refresh_from_db()
    assert (response.status_code, rollout.state) == (403, RolloutState.RUNNING)


def test_get__405(editor: User) -> None:
    rollout = rollout_in("running")

    assert client_for(editor).get(reverse("rollouts:rollout-pause", args=[rollout.pk])).status_code == 405


def test_experiment__conclude_then_start_the_winners_canary(editor: User) -> None:
    experiment = make_running_experiment(
        policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.10}]
    )
    add_arm_traffic(experiment, arm="baseline", calls=1000, passed=850, errors=5, cost_usd=0.004)
    add_arm_traffic(experiment, arm="haiku", calls=1000, passed=852, errors=5, cost_usd=0.0015)
    add_arm_traffic(experiment, arm="sonnet", calls=1000, passed=860, errors=5, cost_usd=0.003)
    add_arm_traffic(experiment, arm="short", calls=1000, passed=600, errors=5, cost_usd=0.0008)
    client = client_for(editor)
    url = reverse("rollouts:experiment", args=[experiment.pk])
    assert 'id="control-conclude"' in client.get(url).content.decode()

    concluded = client.post(
        reverse("rollouts:experiment-conclude", args=[experiment.pk]), {"reason": "long enough"}, follow=True
    )
    experiment.refresh_from_db()
    assert (experiment.state, experiment.winner) == (ExperimentState.CONCLUDED, "haiku")
    assert "Concluded on the data so far" in concluded.content.decode()
    assert 'id="control-canary"' in concluded.content.decode()

    canary = client.post(
        reverse("rollouts:experiment-canary", args=[experiment.pk]),
        {"reason": "ship the cheapest"},
        follow=True,
    )
    experiment.refresh_from_db()
    assert experiment.canary is not None
    assert canary.redirect_chain[-1][0] == reverse("rollouts:detail", args=[experiment.canary.pk])
    assert f"Started rollout #{experiment.canary.pk}, a canary of the winner." in canary.content.decode()


def test_experiment__abort__everyone_back_on_the_baseline(editor: User) -> None:
    experiment = make_running_experiment()

    response = client_for(editor).post(
        reverse("rollouts:experiment-abort", args=[experiment.pk]), {"reason": "wrong arms"}, follow=True
    )

    experiment.refresh_from_db()
    assert experiment.state == ExperimentState.ABORTED
    assert "Aborted: everyone gets the baseline again" in response.content.decode()
    assert experiments.fresh(experiment).state == ExperimentState.ABORTED
