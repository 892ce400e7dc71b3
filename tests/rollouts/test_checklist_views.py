"""The checklist block of the rollout page, its htmx forms, and the Approvals page."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import User
from django.test import Client

from controlplane.audit import Actor
from flags import services as flag_services
from flags.models import Approval, ApprovalState
from rollouts.models import ChecklistSignoff, Rollout, RolloutState
from rollouts.services import checklist, experiments
from tests.factories import FACTORY_ACTOR
from tests.pages import logged_in
from tests.rollouts.factories import make_rollout, make_running_experiment, make_world, rollout_in

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true", "HX-Target": "checklist"}


def _blocked_rollout() -> Rollout:
    world = make_world()
    checklist.set_checklist_policy(
        environment=world.environment, required=["budgets", "tools_deliberate"], actor=FACTORY_ACTOR
    )
    return make_rollout(world)


def test_rollout_page__red_items__says_blocked_and_names_them(editor: User) -> None:
    rollout = _blocked_rollout()
    page = logged_in(editor).get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "2 required items are red" in page
    assert "Latency budget and daily cost budget set" in page


@pytest.mark.parametrize("state", ["running", "rolled_back"])
def test_rollout_page__past_its_start__checklist_folded_as_a_record_without_forms(
    editor: User, state: str
) -> None:
    rollout = rollout_in(state)

    page = logged_in(editor).get(f"/rollouts/{rollout.pk}/").content.decode()

    record = page[page.index('<details class="card checklist" id="checklist">') :]
    record = record[: record.index("</details>")]
    assert "Deploy checklist: it gated the start" in record
    said = f"Rollout {rollout.get_state_display().lower()}: the checklist decided whether it could start"
    assert said in record
    assert "cannot start" not in record
    assert "/attest/" not in record
    assert "/waive/" not in record


def test_experiment_page__concluded__checklist_folded_as_a_record(editor: User) -> None:
    experiment = experiments.conclude_experiment(
        experiment=make_running_experiment(), actor=FACTORY_ACTOR, reason="long enough"
    )

    page = logged_in(editor).get(f"/experiments/{experiment.pk}/").content.decode()

    assert "Deploy checklist: it gated the start" in page
    assert "Experiment concluded: the checklist decided whether it could start" in page
    assert "may start" not in page


def test_attest__htmx__block_swapped_with_name_and_note(editor: User) -> None:
    rollout = _blocked_rollout()
    response = logged_in(editor).post(
        f"/rollouts/{rollout.pk}/checklist/tools_deliberate/attest/",
        {"note": "No destructive tools"},
        headers=HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="checklist"' in body
    assert "Attested by <strong>editor</strong>" in body
    assert "No destructive tools" in body


def test_attest__viewer__403_and_nothing_recorded(viewer: User) -> None:
    rollout = _blocked_rollout()
    response = logged_in(viewer).post(
        f"/rollouts/{rollout.pk}/checklist/tools_deliberate/attest/", {"note": "x"}, headers=HTMX
    )
    assert response.status_code == 403
    assert not ChecklistSignoff.objects.exists()


def test_waive__without_reason__says_why_and_nothing_recorded(approver: User) -> None:
    rollout = _blocked_rollout()
    response = logged_in(approver).post(
        f"/rollouts/{rollout.pk}/checklist/budgets/waive/", {"reason": ""}, headers=HTMX
    )
    assert "A waiver needs a reason" in response.content.decode()
    assert not ChecklistSignoff.objects.exists()


def test_waive__editor__403(editor: User) -> None:
    rollout = _blocked_rollout()
    response = logged_in(editor).post(
        f"/rollouts/{rollout.pk}/checklist/budgets/waive/", {"reason": "x"}, headers=HTMX
    )
    assert response.status_code == 403


def test_start__red_checklist__refused_in_words_and_not_started(editor: User) -> None:
    rollout = _blocked_rollout()
    response = logged_in(editor).post(f"/rollouts/{rollout.pk}/start/", {"reason": "go"}, headers=HTMX)
    assert "has 2 red items" in response.content.decode()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.READY


def test_start__four_eyes__waits_for_an_approver(editor: User) -> None:
    world = make_world()
    flag_services.set_environment_requires_approval(
        environment=world.environment, required=True, actor=FACTORY_ACTOR
    )
    rollout = make_rollout(world, actor=Actor.for_user(editor))
    response = logged_in(editor).post(f"/rollouts/{rollout.pk}/start/", {"reason": "go"}, headers=HTMX)
    assert "waits for an Approver other than you" in response.content.decode()
    assert Approval.objects.pending().count() == 1


def test_start__htmx__page_reloaded_running_with_the_checklist_folded(editor: User) -> None:
    rollout = make_rollout(make_world())
    client = logged_in(editor)

    response = client.post(f"/rollouts/{rollout.pk}/start/", {"reason": "go"}, headers=HTMX)

    assert response.headers["HX-Refresh"] == "true"
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Started: the rollout is running." in page
    assert "Deploy checklist: it gated the start" in page


def test_start__protected_without_a_reason__refused_in_words_and_not_started(editor: User) -> None:
    world = make_world()
    rollout = make_rollout(world)
    flag_services.set_environment_protected(
        environment=world.environment, protected=True, actor=FACTORY_ACTOR
    )

    response = logged_in(editor).post(f"/rollouts/{rollout.pk}/start/", {"reason": "  "}, headers=HTMX)

    assert f"'{world.environment.key}' is protected: say why you start it." in html.unescape(
        response.content.decode()
    )
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.READY


def test_start__anonymous__sent_to_log_in() -> None:
    rollout = _blocked_rollout()
    response = Client().post(f"/rollouts/{rollout.pk}/start/", {"reason": "go"})
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_approvals_page__approver_approves__applied(editor: User, approver: User) -> None:
    world = make_world()
    flag_services.set_environment_requires_approval(
        environment=world.environment, required=True, actor=FACTORY_ACTOR
    )
    rollout = make_rollout(world, actor=Actor.for_user(editor))
    logged_in(editor).post(f"/rollouts/{rollout.pk}/start/", {"reason": "go"})
    approval = Approval.objects.get()
    page = logged_in(approver).get("/approvals/").content.decode()
    assert f"approval-{approval.pk}" in page
    assert "Deploy checklist:" in page
    response = logged_in(approver).post(
        f"/approvals/{approval.pk}/decide/", {"decision": "approve", "reason": "looked fine"}
    )
    assert response.status_code == 302
    approval.refresh_from_db()
    rollout.refresh_from_db()
    assert (approval.state, rollout.state) == (ApprovalState.APPROVED, RolloutState.RUNNING)


def test_approvals_page__editor_cannot_decide(editor: User) -> None:
    world = make_world()
    flag_services.set_environment_requires_approval(
        environment=world.environment, required=True, actor=FACTORY_ACTOR
    )
    rollout = make_rollout(world)
    logged_in(editor).post(f"/rollouts/{rollout.pk}/start/", {"reason": "go"})
    approval = Approval.objects.get()
    response = logged_in(editor).post(f"/approvals/{approval.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.state == ApprovalState.PENDING
