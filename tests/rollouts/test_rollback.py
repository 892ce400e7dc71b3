"""The one-motion rollback (rollouts.services.rollback): each motion, and each entry point (the
page's button, the API, `manage.py rollback`, the client's `Flagstaff.rollback`) leaving the same
audit entry and one revision bump."""

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.models import AuditEntry, Role
from flags import services as flag_services
from flags.models import Approval, Environment, FlagState, Split
from flagstaff import Flagstaff, RollbackRefused
from rollouts.models import Experiment, Rollout
from rollouts.services.rollback import roll_back
from telemetry.models import Incident, IncidentKind
from telemetry.models.incidents import WebhookDelivery
from telemetry.services import webhooks
from tests.factories import (
    FACTORY_ACTOR,
    audit_mark,
    audit_since,
    client_for,
    make_token,
    make_user,
    make_version,
)
from tests.rollouts.factories import make_experiment, make_running_rollout, make_world, rollout_in

# The keys every entry point's `flag.rolled_back` entry holds: one audit shape.
AUDIT_KEYS = {
    "motion",
    "summary",
    "serving_version",
    "rollout",
    "experiment",
    "split",
    "candidate",
    "revision_before",
    "revision_after",
    "incident",
    "rehearsal",
}


def _revision(environment_id: int) -> int:
    return Environment.objects.values_list("revision", flat=True).get(pk=environment_id)


def _subscribe() -> None:
    webhooks.create_webhook(
        name="ops", url="https://hooks.example.com/f", events=["rollout-rolled-back"], actor=FACTORY_ACTOR
    )


@pytest.mark.django_db
def test_roll_back__running_rollout__rolled_back_split_cleared_one_bump_incident_webhook() -> None:
    rollout = make_running_rollout()
    _subscribe()
    revision = _revision(rollout.environment_id)

    done = roll_back(
        flag=rollout.flag, environment=rollout.environment, actor=FACTORY_ACTOR, reason="bad answers"
    )

    rollout.refresh_from_db()
    assert (rollout.state, done.motion) == ("rolled_back", "rollout_rolled_back")
    assert not Split.objects.active().exists()
    assert _revision(rollout.environment_id) == done.revision_after == revision + 1
    assert done.incident == Incident.objects.get(kind=IncidentKind.ROLLOUT_ROLLED_BACK).pk
    assert WebhookDelivery.objects.filter(event="rollout-rolled-back").count() == 1


@pytest.mark.django_db
def test_roll_back__after_full_promotion__previous_version_restored_once() -> None:
    rollout = rollout_in("promoted")
    _subscribe()
    state = FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)
    assert state.serving_version_id == rollout.candidate_id
    revision = _revision(rollout.environment_id)

    done = roll_back(
        flag=rollout.flag, environment=rollout.environment, actor=FACTORY_ACTOR, reason="regressed"
    )

    state.refresh_from_db()
    assert (done.motion, done.serving_version, done.rollout) == ("promotion_reverted", 1, rollout.pk)
    assert state.serving_version_id == rollout.baseline_id
    assert _revision(rollout.environment_id) == revision + 1
    assert Incident.objects.filter(kind=IncidentKind.ROLLOUT_ROLLED_BACK).count() == 1
    assert WebhookDelivery.objects.get().payload["restored"] == 1
    with pytest.raises(Conflict) as again:
        roll_back(flag=rollout.flag, environment=rollout.environment, actor=FACTORY_ACTOR, reason="twice")
    assert again.value.code == "nothing_to_roll_back"


@pytest.mark.django_db
def test_roll_back__running_experiment__aborted_split_ended_one_bump() -> None:
    experiment = make_experiment()
    from rollouts.services import experiments

    experiments.start_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="go")
    revision = _revision(experiment.environment_id)

    done = roll_back(
        flag=experiment.flag, environment=experiment.environment, actor=FACTORY_ACTOR, reason="costly"
    )

    assert Experiment.objects.get(pk=experiment.pk).state == "aborted"
    assert (done.motion, done.experiment) == ("experiment_ended", experiment.pk)
    assert not Split.objects.active().exists()
    assert _revision(experiment.environment_id) == revision + 1
    assert done.incident is not None


@pytest.mark.django_db
def test_roll_back__split_set_by_hand__cleared_one_bump() -> None:
    world = make_world()
    flag_services.set_split(
        flag=world.flag, environment=world.environment, candidate=2, weight=500, actor=FACTORY_ACTOR
    )
    revision = _revision(world.environment.pk)

    done = roll_back(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR, reason="by hand")

    assert (done.motion, done.candidate) == ("split_cleared", 2)
    assert not Split.objects.active().exists()
    assert _revision(world.environment.pk) == revision + 1


@pytest.mark.django_db
def test_roll_back__nothing_on_traffic__409_nothing_changed() -> None:
    world = make_world()
    revision, mark = _revision(world.environment.pk), audit_mark()

    with pytest.raises(Conflict) as refused:
        roll_back(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR, reason="why not")

    assert refused.value.code == "nothing_to_roll_back"
    assert "Nothing to roll back" in refused.value.detail
    assert _revision(world.environment.pk) == revision
    assert audit_since(mark) == []


@pytest.mark.django_db
def test_roll_back__blank_reason__400_reason_required_nothing_changed() -> None:
    rollout = make_running_rollout()

    with pytest.raises(InvalidInput) as refused:
        roll_back(flag=rollout.flag, environment=rollout.environment, actor=FACTORY_ACTOR, reason="  ")

    assert refused.value.code == "reason_required"
    assert Rollout.objects.get(pk=rollout.pk).state == "running"


# Entry points: the same service, the same audit shape, one revision bump.


def _by_api(rollout: Rollout) -> None:
    editor = make_user(role=Role.EDITOR)
    response = client_for(editor).post(
        f"/api/v1/flags/{rollout.flag.key}/environments/{rollout.environment.key}/rollback/",
        {"reason": "from the API"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["motion"] == "rollout_rolled_back"


def _by_page(rollout: Rollout) -> None:
    browser = Client()
    browser.force_login(make_user(role=Role.EDITOR))
    url = f"/flags/{rollout.flag.key}/environments/{rollout.environment.key}/rollback/"
    page = browser.get(url)
    assert f"Stop serving v{rollout.candidate.number}" in page.content.decode()
    response = browser.post(url, {"reason": "from the page", "next": f"/rollouts/{rollout.pk}/"})
    assert (response.status_code, response["Location"]) == (302, f"/rollouts/{rollout.pk}/")


def _by_command(rollout: Rollout) -> None:
    out = StringIO()
    call_command(
        "rollback",
        rollout.flag.key,
        rollout.environment.key,
        "--reason",
        "from a shell",
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["motion"] == "rollout_rolled_back"


ENTRY_POINTS: dict[str, Callable[[Rollout], None]] = {
    "api": _by_api,
    "page": _by_page,
    "command": _by_command,
}


@pytest.mark.django_db
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_point__running_rollout__same_audit_shape_one_revision_bump(entry: str) -> None:
    rollout = make_running_rollout()
    revision, mark = _revision(rollout.environment_id), audit_mark()

    ENTRY_POINTS[entry](rollout)

    assert _revision(rollout.environment_id) == revision + 1
    [entry_row] = [row for row in audit_since(mark) if row.action == "flag.rolled_back"]
    assert set(entry_row.changes) == AUDIT_KEYS
    assert (entry_row.changes["revision_before"], entry_row.changes["revision_after"]) == (
        revision,
        revision + 1,
    )
    assert entry_row.source == {"api": "api", "page": "ui", "command": "cli"}[entry]
    assert Rollout.objects.get(pk=rollout.pk).state == "rolled_back"


@pytest.mark.django_db(transaction=True)
def test_entry_point__client_rollback__same_audit_shape_one_bump_and_409_after(live_server: Any) -> None:
    rollout = make_running_rollout()
    token = make_token(scopes=["read", "write", "resolve"])
    revision, mark = _revision(rollout.environment_id), audit_mark()

    with Flagstaff(
        url=live_server.url, token=token.secret, environment=rollout.environment.key, refresh="poll"
    ) as fs:
        done = fs.rollback(rollout.flag.key, reason="from the client")
        with pytest.raises(RollbackRefused) as refused:
            fs.rollback(rollout.flag.key, reason="again")

    assert (done["motion"], done["revision_after"]) == ("rollout_rolled_back", revision + 1)
    assert (refused.value.status, refused.value.code) == (409, "nothing_to_roll_back")
    [entry_row] = AuditEntry.objects.filter(id__gt=mark, action="flag.rolled_back")
    assert set(entry_row.changes) == AUDIT_KEYS
    assert _revision(rollout.environment_id) == revision + 1


@pytest.mark.django_db
@pytest.mark.parametrize("caller", ["viewer", "anonymous"])
def test_api__without_write_scope__refused_traffic_unchanged(
    caller: str, request: pytest.FixtureRequest
) -> None:
    rollout = make_running_rollout()
    user: User | None = request.getfixturevalue("viewer") if caller == "viewer" else None

    response = client_for(user).post(
        f"/api/v1/flags/{rollout.flag.key}/environments/{rollout.environment.key}/rollback/",
        {"reason": "x"},
        format="json",
    )

    assert response.status_code == (403 if user else 401)
    assert Split.objects.active().exists()


@pytest.mark.django_db
def test_api__nothing_to_roll_back__409_with_the_reason(editor: User) -> None:
    world = make_world()

    response = client_for(editor).post(
        f"/api/v1/flags/{world.flag.key}/environments/{world.environment.key}/rollback/",
        {"reason": "x"},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["code"] == "nothing_to_roll_back"


@pytest.mark.django_db
def test_command__nothing_to_roll_back__error_naming_the_code() -> None:
    world = make_world()

    with pytest.raises(CommandError, match="nothing_to_roll_back"):
        call_command("rollback", world.flag.key, world.environment.key, "--reason", "x")


@pytest.mark.django_db
def test_rollout_page__roll_back_button_and_rehearsals_block(editor: User) -> None:
    rollout = make_running_rollout()
    browser = Client()
    browser.force_login(editor)

    page = browser.get(f"/rollouts/{rollout.pk}/").content.decode()

    assert 'id="rollback"' in page
    assert f'action="/rollouts/{rollout.pk}/rollback/"' in page
    assert "no successful rollback rehearsal" in page


@pytest.mark.django_db
def test_rollback_page__viewer__403() -> None:
    rollout = make_running_rollout()
    browser = Client()
    browser.force_login(make_user(role=Role.VIEWER))

    response = browser.post(
        f"/flags/{rollout.flag.key}/environments/{rollout.environment.key}/rollback/", {"reason": "x"}
    )

    assert response.status_code == 403
    assert Split.objects.active().exists()


@pytest.mark.django_db
def test_rollback_page__third_version_published_since__nothing_to_roll_back_said_in_words(
    editor: User,
) -> None:
    world = make_world()
    third = make_version(flag=world.flag, content={"model": "claude-opus-4-6", "max_tokens": 256})
    flag_services.publish_version(
        flag=world.flag, environment=world.environment, number=third.number, actor=FACTORY_ACTOR
    )
    browser = Client()
    browser.force_login(editor)

    page = browser.get(
        f"/flags/{world.flag.key}/environments/{world.environment.key}/rollback/"
    ).content.decode()

    assert "Nothing to roll back" in page
    assert 'id="rollback-confirm"' not in page


@pytest.mark.django_db
def test_roll_back__promotion_in_a_four_eyes_environment__acts_at_once_without_an_approval() -> None:
    rollout = rollout_in("promoted")
    flag_services.set_environment_requires_approval(
        environment=rollout.environment, required=True, actor=FACTORY_ACTOR
    )
    rollout.environment.refresh_from_db()
    person = Actor.for_user(make_user(role=Role.EDITOR))

    done = roll_back(flag=rollout.flag, environment=rollout.environment, actor=person, reason="regressed")

    state = FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)
    assert (done.motion, state.serving_version_id) == ("promotion_reverted", rollout.baseline_id)
    assert not Approval.objects.filter(flag=rollout.flag).exists()
