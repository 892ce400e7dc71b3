"""The eval gate: policy, verdicts with evidence, the publishing check, and the Approver's override."""

from __future__ import annotations

import pytest

from controlplane.errors import Conflict
from controlplane.models import AuditEntry
from evals.models import GatePolicy
from evals.services import gate
from flags import services as flag_services
from flags.models import FlagState
from tests.evals.gate_factories import make_eval_set_version, make_finished_run
from tests.factories import (
    FACTORY_ACTOR,
    audit_mark,
    audit_since,
    client_for,
    make_environment,
    make_flag,
    make_version,
)

pytestmark = pytest.mark.django_db

N = 300


def _gated_flag(*, required_pass_rate=0.85, **policy):
    environment = make_environment(key="production")
    flag = make_flag(key="support-chat")
    v1 = make_version(flag=flag)
    v2 = make_version(
        flag=flag,
        content={"model": "claude-haiku-4-5", "max_tokens": 512, "cache_control": {"type": "ephemeral"}},
    )
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    esv = make_eval_set_version(cases=N, key="support-qa")
    gate.set_gate_policy(
        flag=flag,
        eval_set_key="support-qa",
        required_pass_rate=required_pass_rate,
        actor=FACTORY_ACTOR,
        **policy,
    )
    return environment, flag, v1, v2, esv


def _outcomes(passes):
    return [i < passes for i in range(N)]


def test_publish_version__no_gate_policy__allowed_and_audit_says_no_verdict_needed():
    environment, flag = make_environment(), make_flag()
    make_version(flag=flag)
    mark = audit_mark()

    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)

    [entry] = audit_since(mark)
    [outcome] = entry.changes["preconditions"]
    assert outcome["met"]
    assert "no gate policy: no verdict is required" in outcome["detail"]


def test_publish_version__policy_without_verdict__409_gate_required_naming_the_verdict():
    environment, flag, _, _, _ = _gated_flag()

    with pytest.raises(Conflict) as caught:
        flag_services.publish_version(flag=flag, environment=environment, number=2, actor=FACTORY_ACTOR)

    assert caught.value.code == "gate_required"
    assert caught.value.extra["missing"] == ["a passing gate verdict for v2 on eval set 'support-qa' v1"]


def test_evaluate_gate__as_good_as_serving__passes_and_publishing_is_allowed():
    environment, flag, v1, v2, esv = _gated_flag()
    make_finished_run(version=v1, eval_set_version=esv, passed=_outcomes(285))
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))

    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=environment, actor=FACTORY_ACTOR)
    flag_services.publish_version(flag=flag, environment=environment, number=2, actor=FACTORY_ACTOR)

    assert verdict.passed
    assert verdict.evidence["pass_rate"]["lower"] == pytest.approx(0.9192, abs=1e-4)  # Wilson (1927) by hand
    assert verdict.evidence["non_inferiority"]["baseline_version"] == 1
    assert verdict.evidence["explanation"].startswith("v2 passes the gate: 285 of 300 cases passed")
    assert FlagState.objects.get(flag=flag, environment=environment).serving_version == v2


def _rolled_forward_to_v2():
    """v1 served, then v2 published with a passing verdict; v3 never served and never judged."""
    environment, flag, v1, v2, esv = _gated_flag()
    v3 = make_version(flag=flag)
    make_finished_run(version=v1, eval_set_version=esv, passed=_outcomes(285))
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))
    gate.evaluate_gate(flag=flag, version=v2, environment=environment, actor=FACTORY_ACTOR)
    flag_services.publish_version(flag=flag, environment=environment, number=2, actor=FACTORY_ACTOR)
    return environment, flag, v3


def test_publish_version__rollback_to_a_version_served_before__allowed_without_a_verdict():
    environment, flag, _ = _rolled_forward_to_v2()
    mark = audit_mark()

    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)

    [entry] = audit_since(mark)
    [outcome] = entry.changes["preconditions"]
    assert (
        FlagState.objects.filter(flag=flag, environment=environment)
        .values_list("serving_version__number", flat=True)
        .get()
        == 1
    )
    assert outcome["met"]
    assert "has served v1 before" in outcome["detail"]


def test_publish_version__version_never_served_there__still_409_gate_required():
    environment, flag, _ = _rolled_forward_to_v2()

    with pytest.raises(Conflict) as caught:
        flag_services.publish_version(flag=flag, environment=environment, number=3, actor=FACTORY_ACTOR)

    assert caught.value.code == "gate_required"
    assert caught.value.extra["missing"] == ["a passing gate verdict for v3 on eval set 'support-qa' v1"]


def test_publish_version__served_only_in_another_environment__still_gated():
    _, flag, _ = _rolled_forward_to_v2()
    staging = make_environment(key="staging")

    with pytest.raises(Conflict) as caught:
        flag_services.publish_version(flag=flag, environment=staging, number=1, actor=FACTORY_ACTOR)

    assert caught.value.code == "gate_required"


def test_publish_api__rollback_allowed_new_version_409(editor):
    _rolled_forward_to_v2()
    url = "/api/v1/flags/support-chat/environments/production/publish/"

    back = client_for(editor).post(url, {"version": 1, "reason": "v2 misbehaves"}, format="json")
    forward = client_for(editor).post(url, {"version": 3}, format="json")

    assert back.status_code == 200
    assert forward.status_code == 409
    assert forward.json()["code"] == "gate_required"


def test_evaluate_gate__ten_points_worse_than_serving__fails_saying_why():
    environment, flag, v1, v2, esv = _gated_flag(required_pass_rate=0.5)
    make_finished_run(version=v1, eval_set_version=esv, passed=_outcomes(285))
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(255))

    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=environment, actor=FACTORY_ACTOR)

    assert not verdict.passed
    assert verdict.evidence["pass_rate"]["ok"]
    assert verdict.evidence["non_inferiority"]["candidate_only"] == 0
    assert verdict.evidence["non_inferiority"]["baseline_only"] == 30
    assert "more than 2.0 points below serving v1" in verdict.evidence["explanation"]


def test_evaluate_gate__errored_cases__count_as_not_passed():
    environment, flag, _, v2, esv = _gated_flag(required_pass_rate=0.9)
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=FACTORY_ACTOR)
    outcomes: list[bool | None] = [True] * 270 + [None] * 30
    make_finished_run(version=v2, eval_set_version=esv, passed=outcomes)

    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=None, actor=FACTORY_ACTOR)

    assert verdict.evidence["pass_rate"]["errors"] == 30
    assert verdict.evidence["pass_rate"]["rate"] == pytest.approx(0.9)
    assert not verdict.passed


def test_evaluate_gate__unknown_cost_under_a_ceiling__fails():
    _environment, flag, _, v2, esv = _gated_flag(max_cost_per_case_micro_usd=1000)
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(300), cost_micro_usd=None)

    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=None, actor=FACTORY_ACTOR)

    assert not verdict.passed
    assert "cost per case is unknown for 300 cases" in verdict.evidence["explanation"]


def test_evaluate_gate__p95_latency_over_ceiling__fails():
    _environment, flag, _, v2, esv = _gated_flag(max_p95_latency_ms=600)
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(300), latency_ms=500)

    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=None, actor=FACTORY_ACTOR)

    assert verdict.evidence["p95_latency_ms"]["value"] == pytest.approx(784.05)
    assert "p95 latency 785 ms is over the ceiling 600 ms" in verdict.evidence["explanation"]


def test_evaluate_gate__serving_version_not_run__409_naming_the_missing_run():
    environment, flag, _, v2, esv = _gated_flag()
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))

    with pytest.raises(Conflict) as caught:
        gate.evaluate_gate(flag=flag, version=v2, environment=environment, actor=FACTORY_ACTOR)

    assert caught.value.code == "run_required"
    assert caught.value.extra["missing"] == ["a finished run of serving v1 on eval set 'support-qa' v1"]


def test_gate_status__serving_changed_since_the_verdict__judged_again():
    environment, flag, v1, v2, esv = _gated_flag()
    v3 = make_version(
        flag=flag,
        content={"model": "claude-opus-4-6", "max_tokens": 512, "cache_control": {"type": "ephemeral"}},
    )
    for version in (v1, v2, v3):
        make_finished_run(version=version, eval_set_version=esv, passed=_outcomes(290))
    gate.evaluate_gate(flag=flag, version=v2, environment=environment, actor=FACTORY_ACTOR)
    gate.evaluate_gate(flag=flag, version=v3, environment=environment, actor=FACTORY_ACTOR)
    flag_services.publish_version(flag=flag, environment=environment, number=3, actor=FACTORY_ACTOR)

    status = gate.gate_status(flag=flag, version=v2, environment=environment)

    assert not status.admits
    assert "serves v3; judge it again" in status.detail


def test_override_verdict__failed_verdict__admits_and_is_audited():
    environment, flag, v1, v2, esv = _gated_flag(required_pass_rate=0.99)
    make_finished_run(version=v1, eval_set_version=esv, passed=_outcomes(285))
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))
    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=environment, actor=FACTORY_ACTOR)
    mark = audit_mark()

    gate.override_verdict(
        verdict=verdict, reason="Incident fix; eval set lags the new policy", actor=FACTORY_ACTOR
    )
    flag_services.publish_version(flag=flag, environment=environment, number=2, actor=FACTORY_ACTOR)

    overridden, published = audit_since(mark)
    assert (overridden.action, overridden.reason) == (
        "gate.overridden",
        "Incident fix; eval set lags the new policy",
    )
    assert "overrode it" in published.changes["preconditions"][0]["detail"]


def test_override_verdict__blank_reason__refused():
    _environment, flag, _v1, v2, esv = _gated_flag(required_pass_rate=0.99)
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))
    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=None, actor=FACTORY_ACTOR)

    with pytest.raises(Exception, match="needs a reason"):
        gate.override_verdict(verdict=verdict, reason="  ", actor=FACTORY_ACTOR)


def test_set_gate_policy__unknown_eval_set_and_bad_rate__400_naming_each_path(editor):
    flag = make_flag(key="support-chat")

    response = client_for(editor).put(
        "/api/v1/flags/support-chat/gate/",
        {"eval_set": "nope", "required_pass_rate": 0.9, "margin": 0.02},
        format="json",
    )
    bad_rate = client_for(editor).put(
        "/api/v1/flags/support-chat/gate/", {"eval_set": "nope", "required_pass_rate": 1.5}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "eval_set", "message": "no eval set with key 'nope'"}]
    assert bad_rate.status_code == 400
    assert not GatePolicy.objects.filter(flag=flag).exists()


def test_gate_api__editor_sets_policy_viewer_reads_anonymous_refused(editor, viewer, anonymous_client):
    make_flag(key="support-chat")
    make_eval_set_version(cases=3, key="support-qa")

    put = client_for(editor).put(
        "/api/v1/flags/support-chat/gate/",
        {"eval_set": "support-qa", "required_pass_rate": 0.9},
        format="json",
    )
    viewer_put = client_for(viewer).put(
        "/api/v1/flags/support-chat/gate/",
        {"eval_set": "support-qa", "required_pass_rate": 0.1},
        format="json",
    )
    read = client_for(viewer).get("/api/v1/flags/support-chat/gate/")

    assert put.status_code == 200
    assert viewer_put.status_code == 403
    assert read.json()["policy"]["required_pass_rate"] == 0.9
    assert read.json()["required"] is True
    assert anonymous_client.get("/api/v1/flags/support-chat/gate/").status_code == 401


def test_gate_api__delete_with_reason_in_query__removes_policy_and_audits_the_reason(editor):
    flag = make_flag(key="support-chat")
    make_eval_set_version(cases=3, key="support-qa")
    client_for(editor).put(
        "/api/v1/flags/support-chat/gate/",
        {"eval_set": "support-qa", "required_pass_rate": 0.9},
        format="json",
    )

    response = client_for(editor).delete("/api/v1/flags/support-chat/gate/?reason=Gate+moves+to+the+new+set")
    again = client_for(editor).delete("/api/v1/flags/support-chat/gate/")

    assert response.status_code == 204
    assert not GatePolicy.objects.filter(flag=flag).exists()
    entry = AuditEntry.objects.filter(action="gate.policy_removed").get()
    assert entry.reason == "Gate moves to the new set"
    assert again.status_code == 404


def test_gate_api__no_policy__says_no_verdict_needed(viewer):
    make_flag(key="support-chat")

    body = client_for(viewer).get("/api/v1/flags/support-chat/gate/").json()

    assert body["required"] is False
    assert body["detail"] == "No gate policy: publishing needs no verdict."


def test_gate_evaluate_api__editor_judges_viewer_refused(editor, viewer):
    _environment, _flag, v1, v2, esv = _gated_flag()
    make_finished_run(version=v1, eval_set_version=esv, passed=_outcomes(285))
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))

    refused = client_for(viewer).post(
        "/api/v1/flags/support-chat/gate/evaluate/", {"version": 2}, format="json"
    )
    response = client_for(editor).post(
        "/api/v1/flags/support-chat/gate/evaluate/",
        {"version": 2, "environment": "production"},
        format="json",
    )

    assert refused.status_code == 403
    assert response.status_code == 201
    assert response.json()["passed"] is True
    assert response.json()["admitted"] is True


def test_gate_override_api__approver_overrides_editor_refused(editor, approver):
    _environment, flag, _v1, v2, esv = _gated_flag(required_pass_rate=0.99)
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))
    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=None, actor=FACTORY_ACTOR)
    url = f"/api/v1/flags/support-chat/gate/verdicts/{verdict.pk}/override/"

    refused = client_for(editor).post(url, {"reason": "ship it"}, format="json")
    no_reason = client_for(approver).post(url, {}, format="json")
    response = client_for(approver).post(url, {"reason": "ship it"}, format="json")

    assert refused.status_code == 403
    assert no_reason.status_code == 400
    assert response.status_code == 200
    assert response.json()["override"]["by"] == "approver"
    assert response.json()["admitted"] is True


def _overridden_v2():
    _environment, flag, _v1, v2, esv = _gated_flag(required_pass_rate=0.99)
    make_finished_run(version=v2, eval_set_version=esv, passed=_outcomes(285))
    verdict = gate.evaluate_gate(flag=flag, version=v2, environment=None, actor=FACTORY_ACTOR)
    gate.override_verdict(verdict=verdict, reason="Known flaky cases", actor=FACTORY_ACTOR)
    return flag


def test_version_page__overridden_verdict__shows_who_and_why(client, viewer):
    _overridden_v2()
    client.force_login(viewer)

    page = client.get("/flags/support-chat/versions/2/").content.decode()

    assert "gate: overridden" in page
    assert "tests overrode it: Known flaky cases" in page


def test_flag_page__versions__carry_their_gate_badges(client, viewer):
    _overridden_v2()
    client.force_login(viewer)

    page = client.get("/flags/support-chat/").content.decode()

    assert page.count("gate: overridden") == 1
    assert page.count("gate: no verdict") == 1


def test_version_pages__anonymous__sent_to_login(client):
    _overridden_v2()

    response = client.get("/flags/support-chat/versions/2/")

    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_version_api__overridden_verdict__checks_show_the_override(viewer):
    _overridden_v2()

    body = client_for(viewer).get("/api/v1/flags/support-chat/versions/2/").json()

    assert body["checks"][0]["summary"] == "gate: overridden"
    assert "Known flaky cases" in body["checks"][0]["detail"]
