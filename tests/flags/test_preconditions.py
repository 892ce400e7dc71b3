"""The precondition registry: publishing and new splits ask every registered check first."""

from __future__ import annotations

import pytest

from controlplane.errors import Conflict
from flags import services
from flags.models import Environment, FlagState, Split
from flags.services import preconditions
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, client_for
from tests.flags.serving_helpers import Served

pytestmark = pytest.mark.django_db


def _refuse_v3(change: preconditions.ServingChange) -> preconditions.Outcome:
    if change.version.number == 3:
        return preconditions.Outcome(
            name="test-gate",
            met=False,
            detail=f"v3 has no passing verdict for {change.action}.",
            code="gate_required",
            missing=["verdict"],
        )
    return preconditions.Outcome(name="test-gate", met=True, detail="passed")


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preconditions, "_checks", {})
    preconditions.register("test-gate", _refuse_v3)


def test_publish_version__check_unmet__refused_with_its_code_and_nothing_changes(
    gated: None, chat: Served, production: Environment
):
    with pytest.raises(Conflict) as caught:
        services.publish_version(flag=chat.flag, environment=production, number=3, actor=FACTORY_ACTOR)

    assert caught.value.code == "gate_required"
    assert caught.value.extra == {"missing": ["verdict"]}
    assert FlagState.objects.get(flag=chat.flag, environment=production).serving_version == chat.v1


def test_publish_version__check_met__audit_records_the_outcome(
    gated: None, chat: Served, production: Environment
):
    mark = audit_mark()

    services.publish_version(flag=chat.flag, environment=production, number=2, actor=FACTORY_ACTOR)

    [entry] = audit_since(mark)
    assert entry.changes["preconditions"] == [
        {"name": "test-gate", "met": True, "detail": "passed", "missing": []}
    ]


def test_set_split__new_candidate_unmet__refused(gated: None, chat: Served, production: Environment):
    with pytest.raises(Conflict, match="for split"):
        services.set_split(
            flag=chat.flag, environment=production, candidate=3, weight=100, actor=FACTORY_ACTOR
        )

    assert not Split.objects.active().filter(flag=chat.flag).exists()


def test_set_split__weight_change_of_admitted_candidate__not_checked_again(
    monkeypatch: pytest.MonkeyPatch, gated: None, chat: Served, production: Environment
):
    services.set_split(flag=chat.flag, environment=production, candidate=2, weight=100, actor=FACTORY_ACTOR)
    monkeypatch.setitem(preconditions._checks, "test-gate", lambda change: pytest.fail("checked again"))

    split = services.set_split(
        flag=chat.flag, environment=production, candidate=2, weight=0, actor=FACTORY_ACTOR
    )

    assert split.weight == 0


def test_publish_api__check_unmet__409_names_what_is_missing(gated: None, chat: Served, editor):
    response = client_for(editor).post(
        f"/api/v1/flags/{chat.flag.key}/environments/production/publish/", {"version": 3}, format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "code": "gate_required",
        "detail": "v3 has no passing verdict for publish.",
        "missing": ["verdict"],
    }


def test_publish_api__anonymous__401_and_no_check_runs(
    monkeypatch: pytest.MonkeyPatch, chat: Served, anonymous_client
):
    monkeypatch.setattr(preconditions, "_checks", {"test-gate": lambda change: pytest.fail("checked")})

    response = anonymous_client.post(
        f"/api/v1/flags/{chat.flag.key}/environments/production/publish/", {"version": 3}, format="json"
    )

    assert response.status_code == 401
