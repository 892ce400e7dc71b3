"""Creating an A/B experiment from the experiments page: the form's arms, shares and end, what
it refuses and where it says so, and who may."""

from __future__ import annotations

import html
import json

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from controlplane.models import AuditEntry
from flags import services as flag_services
from rollouts.models import Experiment, Rollout
from tests.factories import FACTORY_ACTOR, make_version
from tests.pages import field_errors, logged_in
from tests.rollouts.factories import CANDIDATE_CONTENT, World, make_world

pytestmark = pytest.mark.django_db
URL = "/experiments/new/"


def _world_of_three_versions() -> World:
    world = make_world()
    make_version(flag=world.flag, content={**CANDIDATE_CONTENT, "max_tokens": 256})
    return world


def _form(world: World, **fields: object) -> dict[str, object]:
    return {"flag": world.flag.key, "environment": world.environment.key, "window_hours": 168, **fields}


def test_experiment_create__two_candidates_no_shares__equal_arms_a_draft_audited(editor: User) -> None:
    world = _world_of_three_versions()

    response = logged_in(editor).post(
        URL, _form(world, candidate_1=2, name_1="haiku", candidate_2=3, reason="cheaper answers?")
    )

    experiment = Experiment.objects.get(flag=world.flag)
    assert response.status_code == 302
    assert response["Location"] == reverse("rollouts:experiment", args=[experiment.pk])
    arms = list(experiment.arms.order_by("index").values_list("name", "version__number", "weight"))
    assert arms == [("baseline", 1, 3334), ("haiku", 2, 3333), ("v3", 3, 3333)]
    assert (experiment.state, experiment.window_seconds, experiment.required_units_per_arm) == (
        "draft",
        168 * 3600,
        None,
    )
    entry = AuditEntry.objects.get(action="experiment.created", target_id=str(experiment.pk))
    assert entry.reason == "cheaper answers?"


def test_experiment_create__shares_and_a_sample_size__the_baseline_gets_the_rest(editor: User) -> None:
    world = _world_of_three_versions()
    policy = [{"metric": "api_error_rate", "margin": 0.01, "critical": True}]

    response = logged_in(editor).post(
        URL,
        _form(
            world,
            candidate_1=2,
            percent_1="10",
            candidate_2=3,
            percent_2="12.5",
            window_hours="",
            required_units_per_arm=500,
            policy=json.dumps(policy),
        ),
    )

    experiment = Experiment.objects.get(flag=world.flag)
    assert response.status_code == 302
    assert list(experiment.arms.order_by("index").values_list("weight", flat=True)) == [7750, 1000, 1250]
    assert (experiment.window_seconds, experiment.required_units_per_arm) == (None, 500)
    assert [(g["metric"], g["critical"]) for g in experiment.guardrails] == [("api_error_rate", True)]


@pytest.mark.parametrize(
    ("fields", "at", "message"),
    [
        ({}, "candidate_1", "This field is required."),
        (
            {"candidate_1": 2, "name_2": "spare"},
            "candidate_2",
            "Give this candidate's version, or clear its row.",
        ),
        ({"candidate_1": 2, "window_hours": ""}, "window_hours", "Give how long it runs, or how many units"),
        ({"candidate_1": 1}, "candidate_1", "must differ from the serving version"),
        ({"candidate_1": 9}, "candidate_1", "no version 9"),
        ({"candidate_1": 2, "name_1": "Big Model"}, "name_1", "1-32 lowercase letters, digits"),
        ({"candidate_1": 2, "candidate_2": 2}, "candidate_2", "duplicates another arm"),
        ({"candidate_1": 2, "policy": '[{"metric": "mean_tokens"}]'}, "policy", "policy[0].metric: "),
        ({"candidate_1": 2, "percent_1": "120"}, "percent_1", "less than or equal to 99.99"),
    ],
)
def test_experiment_create__bad_input__400_said_at_the_field_nothing_created(
    editor: User, fields: dict[str, object], at: str, message: str
) -> None:
    world = _world_of_three_versions()

    response = logged_in(editor).post(URL, _form(world, **fields))

    page = response.content.decode()
    assert response.status_code == 400
    assert '<details class="card" open id="new-experiment">' in page
    assert html.escape(message, quote=True) in field_errors(page, at)
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"candidate_1": 2, "percent_1": "10", "candidate_2": 3},
            "Give every candidate a share of units, or none (then every arm gets the same).",
        ),
        (
            {"candidate_1": 2, "percent_1": "60", "candidate_2": 3, "percent_2": "40"},
            "The candidates' shares add up to 100 %: leave some for the baseline.",
        ),
    ],
)
def test_experiment_create__shares_that_do_not_fit__400_above_the_form(
    editor: User, fields: dict[str, object], message: str
) -> None:
    world = _world_of_three_versions()

    response = logged_in(editor).post(URL, _form(world, **fields))

    assert response.status_code == 400
    assert html.escape(message, quote=True) in response.content.decode()
    assert not Experiment.objects.exists()


def test_experiment_create__another_change_under_way__400_saying_so(editor: User) -> None:
    world = _world_of_three_versions()
    logged_in(editor).post(URL, _form(world, candidate_1=2))

    response = logged_in(editor).post(URL, _form(world, candidate_1=3))

    first = Experiment.objects.get()
    assert response.status_code == 400
    assert (
        f"Flag &#x27;{world.flag.key}&#x27; already has an active experiment in "
        f"&#x27;{world.environment.key}&#x27; (experiment {first.pk}, draft)."
    ) in response.content.decode()


@pytest.mark.parametrize(
    ("url", "fields", "model", "doing"),
    [
        (URL, {"candidate_1": 2}, Experiment, "create this experiment"),
        ("/rollouts/new/", {"candidate": 2}, Rollout, "create this rollout"),
    ],
)
def test_create__protected_environment_without_a_reason__400_at_the_reason(
    editor: User, url: str, fields: dict[str, object], model: type[Experiment] | type[Rollout], doing: str
) -> None:
    world = _world_of_three_versions()
    flag_services.set_environment_protected(
        environment=world.environment, protected=True, actor=FACTORY_ACTOR
    )

    response = logged_in(editor).post(url, _form(world, **fields))

    page = response.content.decode()
    assert response.status_code == 400
    errors = page[page.index('id="id_reason_error"') :]
    assert html.escape(f"'{world.environment.key}' is protected: say why you {doing}.", quote=True) in errors
    assert not model.objects.exists()


def test_experiment_list__editor__offers_the_form_viewer_does_not(editor: User, viewer: User) -> None:
    world = _world_of_three_versions()

    offered = logged_in(editor).get(reverse("rollouts:experiments")).content.decode()
    hidden = logged_in(viewer).get(reverse("rollouts:experiments")).content.decode()
    refused = logged_in(viewer).post(URL, _form(world, candidate_1=2))

    assert 'id="new-experiment"' in offered
    assert f'action="{URL}"' in offered
    assert 'value="168"' in offered, "a week by default"
    assert 'id="new-experiment"' not in hidden
    assert refused.status_code == 403
    assert not Experiment.objects.exists()
