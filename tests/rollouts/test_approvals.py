"""Four eyes: where an environment requires approval, a rollout start, a manual promote and a
publish wait for an Approver other than the author, who approves on the evidence shown."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from controlplane.audit import Actor
from controlplane.models import Role
from flags import services as flag_services
from flags.models import Approval, ApprovalState, FlagState
from flags.services import approvals
from rollouts.models import Rollout, RolloutState
from rollouts.services import lifecycle
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, client_for, make_user
from tests.rollouts.factories import World, make_rollout, make_world

pytestmark = pytest.mark.django_db


def _four_eyes(world: World) -> World:
    flag_services.set_environment_requires_approval(
        environment=world.environment, required=True, actor=FACTORY_ACTOR
    )
    world.environment.refresh_from_db()
    return world


def _rollout_by(user: User, world: World) -> Rollout:
    return make_rollout(world, actor=Actor.for_user(user))


def _start(user: User, rollout: Rollout) -> Approval:
    response = client_for(user).post(f"/api/v1/rollouts/{rollout.pk}/start/", {"reason": "go"}, format="json")
    assert response.status_code == 202, response.json()
    return Approval.objects.get(pk=response.json()["id"])


def test_start__four_eyes__202_pending_and_the_rollout_not_started(editor: User) -> None:
    rollout = _rollout_by(editor, _four_eyes(make_world()))
    approval = _start(editor, rollout)
    rollout.refresh_from_db()
    assert (approval.state, approval.author_name, approval.action) == ("pending", "editor", "rollout.start")
    assert (rollout.state, rollout.split_id) == (RolloutState.READY, None)


def test_start__asked_twice__one_pending_request(editor: User) -> None:
    rollout = _rollout_by(editor, _four_eyes(make_world()))
    assert _start(editor, rollout).pk == _start(editor, rollout).pk


def test_start__environment_without_four_eyes__starts_at_once(editor: User) -> None:
    rollout = _rollout_by(editor, make_world())
    response = client_for(editor).post(
        f"/api/v1/rollouts/{rollout.pk}/start/", {"reason": "go"}, format="json"
    )
    assert (response.status_code, response.json()["state"]) == (200, "running")


def test_approve__another_approver__starts_and_records_the_evidence(editor: User, approver: User) -> None:
    rollout = _rollout_by(editor, _four_eyes(make_world()))
    approval = _start(editor, rollout)
    mark = audit_mark()
    response = client_for(approver).post(
        f"/api/v1/approvals/{approval.pk}/approve/", {"reason": "checklist green"}, format="json"
    )
    assert response.status_code == 200, response.json()
    rollout.refresh_from_db()
    approval.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    assert (approval.state, approval.decided_by_name) == (ApprovalState.APPROVED, "approver")
    assert set(approval.evidence) >= {"gate", "checklist", "latest_decision"}
    assert approval.evidence["checklist"]["ready"] is True
    actions = [(entry.action, entry.actor_name) for entry in audit_since(mark)]
    assert actions[0] == ("approval.approved", "approver")
    assert ("rollout.started", "editor") in actions


def test_approve__own_request__403_and_nothing_started(admin: User) -> None:
    rollout = _rollout_by(admin, _four_eyes(make_world()))
    approval = _start(admin, rollout)
    response = client_for(admin).post(
        f"/api/v1/approvals/{approval.pk}/approve/", {"reason": "me"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "own_change")
    rollout.refresh_from_db()
    approval.refresh_from_db()
    assert (rollout.state, approval.state) == (RolloutState.READY, ApprovalState.PENDING)


def test_approve__the_rollouts_creator__403(approver: User, editor: User) -> None:
    # The Approver created the rollout, the Editor asked to start it: the Approver authored it too.
    rollout = _rollout_by(approver, _four_eyes(make_world()))
    approval = _start(editor, rollout)
    response = client_for(approver).post(f"/api/v1/approvals/{approval.pk}/approve/", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "own_change")


def test_approve__editor__403_needs_the_approve_scope(editor: User) -> None:
    rollout = _rollout_by(make_user(role=Role.EDITOR), _four_eyes(make_world()))
    approval = _start(make_user(role=Role.EDITOR), rollout)
    response = client_for(editor).post(f"/api/v1/approvals/{approval.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.state == ApprovalState.PENDING


def test_reject__without_reason__400_and_still_pending(editor: User, approver: User) -> None:
    approval = _start(editor, _rollout_by(editor, _four_eyes(make_world())))
    response = client_for(approver).post(
        f"/api/v1/approvals/{approval.pk}/reject/", {"reason": ""}, format="json"
    )
    assert response.status_code == 400
    approval.refresh_from_db()
    assert approval.state == ApprovalState.PENDING


def test_reject__then_approve__409_decided(editor: User, approver: User) -> None:
    approval = _start(editor, _rollout_by(editor, _four_eyes(make_world())))
    client_for(approver).post(
        f"/api/v1/approvals/{approval.pk}/reject/", {"reason": "not now"}, format="json"
    )
    other = make_user(role=Role.APPROVER)
    response = client_for(other).post(f"/api/v1/approvals/{approval.pk}/approve/", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "approval_decided")


def test_manual_promote__four_eyes__waits_then_promotes(editor: User, approver: User) -> None:
    world = make_world()
    rollout = lifecycle.start_rollout(rollout=_rollout_by(editor, world), actor=FACTORY_ACTOR, reason="go")
    _four_eyes(world)
    response = client_for(approver).post(
        f"/api/v1/rollouts/{rollout.pk}/promote/", {"reason": "clean", "stage": 0}, format="json"
    )
    assert (response.status_code, response.json()["action"]) == (202, "rollout.promote")
    rollout.refresh_from_db()
    assert rollout.stage_index == 0
    second = make_user(role=Role.APPROVER)
    approval = Approval.objects.get(pk=response.json()["id"])
    approvals.approve(approval=approval, actor=Actor.for_user(second), reason="agreed")
    rollout.refresh_from_db()
    assert rollout.stage_index == 1


def test_promote_by_the_analysis__four_eyes__not_held() -> None:
    world = make_world()
    rollout = lifecycle.start_rollout(rollout=make_rollout(world), actor=FACTORY_ACTOR, reason="go")
    _four_eyes(world)
    promoted = lifecycle.promote_rollout(rollout=rollout, actor=Actor.system("celery:tick"), reason="passed")
    assert promoted.stage_index == 1


def test_publish__four_eyes__202_then_approved_and_served(editor: User, approver: User) -> None:
    world = _four_eyes(make_world())
    url = f"/api/v1/flags/{world.flag.key}/environments/{world.environment.key}/publish/"
    response = client_for(editor).post(url, {"version": 2, "reason": "v2"}, format="json")
    assert (response.status_code, response.json()["action"]) == (202, "version.publish")
    state = FlagState.objects.get(flag=world.flag, environment=world.environment)
    assert state.serving_version_id == world.baseline.pk
    approval_id = response.json()["id"]
    response = client_for(approver).post(f"/api/v1/approvals/{approval_id}/approve/", {}, format="json")
    assert response.status_code == 200, response.json()
    state.refresh_from_db()
    assert state.serving_version_id == world.candidate.pk
    assert response.json()["evidence"]["version"] == 2


def test_pending_list__approver_sees_the_waiting_change(editor: User, approver: User) -> None:
    approval = _start(editor, _rollout_by(editor, _four_eyes(make_world())))
    response = client_for(approver).get("/api/v1/approvals/?state=pending")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [approval.pk]


def test_four_eyes_setting__editor__403(editor: User) -> None:
    world = make_world()
    response = client_for(editor).patch(
        f"/api/v1/environments/{world.environment.key}/", {"requires_approval": True}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "admin_required")


def test_four_eyes_setting__admin__on_and_audited(admin: User) -> None:
    world = make_world()
    mark = audit_mark()
    response = client_for(admin).patch(
        f"/api/v1/environments/{world.environment.key}/", {"requires_approval": True}, format="json"
    )
    assert (response.status_code, response.json()["requires_approval"]) == (200, True)
    assert [entry.action for entry in audit_since(mark)] == ["environment.approval_required"]
