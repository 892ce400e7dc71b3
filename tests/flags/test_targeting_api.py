import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from controlplane.audit import Actor
from controlplane.services import IssuedToken
from flags import services
from flags.models import Environment, Flag, FlagState, Segment, Split
from flagstaff.engine import bucket
from tests.factories import client_for, make_environment, make_flag, make_token, make_version

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
MAX_CONTEXT_BYTES = 64 * 1024
PLAN_IN_PRO = {"contextName": "plan", "operator": "IN", "values": ["pro"]}


@pytest.fixture
def api(editor: User) -> APIClient:
    return client_for(editor)


@pytest.fixture
def environment() -> Environment:
    return make_environment(key="production")


@pytest.fixture
def flag(environment: Environment) -> Flag:
    """support-chat: v1 (sonnet) published and enabled in production, v2 and v3 (opus 5.5) written."""
    flag = make_flag(key="support-chat")
    make_version(flag=flag)
    for _ in range(2):
        make_version(
            flag=flag,
            content={"model": "claude-opus-5-5", "max_tokens": 2048, "cache_control": {"type": "ephemeral"}},
        )
    services.publish_version(flag=flag, environment=environment, number=1, actor=SYSTEM)
    services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=SYSTEM)
    return flag


RULES = "/api/v1/flags/support-chat/environments/production/rules/"
SPLIT = "/api/v1/flags/support-chat/environments/production/split/"
TRY = "/api/v1/flags/support-chat/environments/production/try/"


def post(client: APIClient, url: str, body: Any) -> Any:
    return client.post(url, body, format="json")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (response.status_code, body["code"]) == (status, code)
    assert body["detail"]
    return body


def error_paths(response: Any) -> list[str]:
    return [error["path"] for error in response.json()["errors"]]


def revision() -> int:
    return Environment.objects.get(key="production").revision


def add_rule(flag: Flag, environment: Environment, **fields: Any) -> None:
    rule: dict[str, Any] = {"constraints": [PLAN_IN_PRO], "segments": [], "version": 2, "description": ""}
    rule.update(fields)
    services.add_rule(flag=flag, environment=environment, actor=SYSTEM, **rule)


def set_split(flag: Flag, environment: Environment, weight: int = 1000) -> Split:
    return services.set_split(flag=flag, environment=environment, candidate=3, weight=weight, actor=SYSTEM)


# segments


def test_segments_get__two_segments__listed_by_key(api: APIClient) -> None:
    services.create_segment(key="staff", name="Staff", constraints=[], actor=SYSTEM)
    services.create_segment(key="beta", name="", constraints=[PLAN_IN_PRO], actor=SYSTEM)

    body = api.get("/api/v1/segments/").json()

    assert [(s["key"], s["name"], s["constraints"]) for s in body["results"]] == [
        ("beta", "beta", [PLAN_IN_PRO]),
        ("staff", "Staff", []),
    ]


def test_segments_post__valid__201_with_segment(api: APIClient) -> None:
    response = post(api, "/api/v1/segments/", {"key": "beta", "name": "Beta", "constraints": [PLAN_IN_PRO]})

    assert response.status_code == 201
    assert {k: response.json()[k] for k in ("key", "name", "constraints")} == {
        "key": "beta",
        "name": "Beta",
        "constraints": [PLAN_IN_PRO],
    }


@pytest.mark.parametrize(
    ("constraint", "path"),
    [
        ({"contextName": "a", "operator": "REGEX", "value": "(unclosed"}, "constraints[0].value"),
        ({"contextName": "a", "operator": "SEMVER_EQ", "value": "1.2"}, "constraints[0].value"),
        (
            {"contextName": "a", "operator": "IN_CIDR", "values": ["10.1.0.0/16", "300.1.1.1"]},
            "constraints[0].values[1]",
        ),
        ({"contextName": "a", "operator": "NUM_EQ", "value": "NaN"}, "constraints[0].value"),
        ({"contextName": "a", "operator": "DATE_AFTER", "value": "tomorrow"}, "constraints[0].value"),
        ({"contextName": "a", "operator": "SOUNDS_LIKE", "values": ["x"]}, "constraints[0].operator"),
    ],
)
def test_segments_post__invalid_constraint__400_at_path(api: APIClient, constraint: Any, path: str) -> None:
    response = post(api, "/api/v1/segments/", {"key": "beta", "constraints": [constraint]})

    assert_error(response, 400, "invalid_constraint")
    assert error_paths(response) == [path]


def test_segments_post__unknown_field__400_at_field(api: APIClient) -> None:
    response = post(api, "/api/v1/segments/", {"key": "beta", "rules": []})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["rules"]


def test_segments_post__duplicate_key__409(api: APIClient) -> None:
    services.create_segment(key="beta", name="", constraints=[], actor=SYSTEM)

    assert_error(post(api, "/api/v1/segments/", {"key": "beta"}), 409, "duplicate_key")


def test_segments_post__viewer__403_and_nothing_saved(viewer: User) -> None:
    response = post(client_for(viewer), "/api/v1/segments/", {"key": "beta"})

    assert_error(response, 403, "forbidden")
    assert not Segment.objects.exists()


def test_segments_get__anonymous__401(anonymous_client: APIClient) -> None:
    assert_error(anonymous_client.get("/api/v1/segments/"), 401, "not_authenticated")


def test_segments_post__environment_bound_token__403(environment: Environment) -> None:
    token = make_token(scopes=["read", "write"], environment=environment)

    response = post(client_for(token), "/api/v1/segments/", {"key": "beta"})

    assert_error(response, 403, "forbidden")


def test_segment_get__unknown_key__404(api: APIClient) -> None:
    assert_error(api.get("/api/v1/segments/nobody/"), 404, "not_found")


def test_segment_patch__constraints__200_and_revision_of_users_bumped(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    services.create_segment(key="beta", name="", constraints=[], actor=SYSTEM)
    add_rule(flag, environment, constraints=[], segments=["beta"])
    before = revision()

    response = api.patch("/api/v1/segments/beta/", {"constraints": [PLAN_IN_PRO]}, format="json")

    assert (response.status_code, response.json()["constraints"]) == (200, [PLAN_IN_PRO])
    assert revision() == before + 1


def test_segment_patch__invalid_constraint__400_at_path(api: APIClient) -> None:
    services.create_segment(key="beta", name="", constraints=[], actor=SYSTEM)
    body = {"constraints": [PLAN_IN_PRO, {"contextName": "v", "operator": "SEMVER_GT", "value": "x"}]}

    response = api.patch("/api/v1/segments/beta/", body, format="json")

    assert_error(response, 400, "invalid_constraint")
    assert error_paths(response) == ["constraints[1].value"]


def test_segment_delete__unused__204(api: APIClient) -> None:
    services.create_segment(key="beta", name="", constraints=[], actor=SYSTEM)

    response = api.delete("/api/v1/segments/beta/")

    assert (response.status_code, Segment.objects.exists()) == (204, False)


def test_segment_delete__used_by_a_rule__409_naming_users(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    services.create_segment(key="beta", name="", constraints=[], actor=SYSTEM)
    add_rule(flag, environment, segments=["beta"])

    body = assert_error(api.delete("/api/v1/segments/beta/"), 409, "segment_in_use")

    assert body["used_by"] == [{"flag": "support-chat", "environment": "production"}]


# rules


def test_rules_get__two_rules__priority_order_with_indexes(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="pro")
    add_rule(flag, environment, constraints=[], everyone=True, version=3, description="everyone else")

    body = api.get(RULES).json()

    assert (body["flag"], body["environment"], body["revision"]) == ("support-chat", "production", revision())
    assert [(r["index"], r["version"], r["description"], r["everyone"]) for r in body["rules"]] == [
        (0, 2, "pro", False),
        (1, 3, "everyone else", True),
    ]


def test_rules_get__no_state_in_environment__empty(api: APIClient, flag: Flag) -> None:
    make_environment(key="staging")

    body = api.get("/api/v1/flags/support-chat/environments/staging/rules/").json()

    assert body["rules"] == []


def test_rules_post__valid__201_with_rules_and_revision_bumped(api: APIClient, flag: Flag) -> None:
    before = revision()

    response = post(api, RULES, {"constraints": [PLAN_IN_PRO], "version": 2, "description": "pro"})

    assert response.status_code == 201
    assert response.json()["rules"] == [
        {
            "index": 0,
            "constraints": [PLAN_IN_PRO],
            "segments": [],
            "version": 2,
            "description": "pro",
            "everyone": False,
        }
    ]
    assert response.json()["revision"] == before + 1


def test_rules_post__position__inserted_there(api: APIClient, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment, description="old")

    response = post(api, RULES, {"everyone": True, "version": 3, "description": "new", "position": 0})

    assert [r["description"] for r in response.json()["rules"]] == ["new", "old"]


@pytest.mark.parametrize(
    ("constraints", "path"),
    [
        (
            [PLAN_IN_PRO, {"contextName": "ua", "operator": "REGEX", "value": "a(?=b)"}],
            "constraints[1].value",
        ),
        ([{"contextName": "v", "operator": "SEMVER_GTE", "value": "1"}], "constraints[0].value"),
        (
            [{"contextName": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "10.0.0.0/40"]}],
            "constraints[0].values[1]",
        ),
        ([{"contextName": "n", "operator": "NUM_GT", "value": "inf"}], "constraints[0].value"),
        (
            [{"contextName": "t", "operator": "DATE_AFTER", "value": "2026-13-01T00:00:00Z"}],
            "constraints[0].value",
        ),
        ([{"contextName": "x", "operator": "in", "values": ["a"]}], "constraints[0].operator"),
        (
            [{"contextName": "x", "operator": "NUM_EQ", "value": 1, "caseInsensitive": True}],
            "constraints[0].caseInsensitive",
        ),
        ([{"contextName": "", "operator": "IN", "values": ["a"]}], "constraints[0].contextName"),
        ([["plan", "IN", "pro"]], "constraints[0]"),
        ({"plan": "pro"}, "constraints"),
    ],
)
def test_rules_post__invalid_constraint__400_at_path_and_nothing_saved(
    api: APIClient, flag: Flag, constraints: Any, path: str
) -> None:
    response = post(api, RULES, {"constraints": constraints, "version": 2})

    assert_error(response, 400, "invalid_rule")
    assert error_paths(response) == [path]
    assert FlagState.objects.get(flag=flag).rules == []


def test_rules_post__unknown_segment__400_at_segment(api: APIClient, flag: Flag) -> None:
    response = post(api, RULES, {"segments": ["nobody"], "version": 2})

    assert_error(response, 400, "invalid_rule")
    assert error_paths(response) == ["segments[0]"]


def test_rules_post__segments_not_a_list__400_at_segments(api: APIClient, flag: Flag) -> None:
    response = post(api, RULES, {"segments": "beta", "version": 2})

    assert error_paths(response) == ["segments"]


def test_rules_post__version_of_another_flag__400_at_version(api: APIClient, flag: Flag) -> None:
    other = make_flag()
    for _ in range(4):
        make_version(flag=other)

    response = post(api, RULES, {"everyone": True, "version": 4})

    body = assert_error(response, 400, "invalid_rule")
    assert error_paths(response) == ["version"]
    assert "no version 4" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "path"), [({}, "version"), ({"version": 0}, "version"), ({"version": "two"}, "version")]
)
def test_rules_post__version_missing_or_malformed__400_at_version(
    api: APIClient, flag: Flag, body: dict[str, Any], path: str
) -> None:
    response = post(api, RULES, body)

    assert_error(response, 400, "invalid")
    assert error_paths(response) == [path]


def test_rules_post__position_past_the_end__400_at_position(api: APIClient, flag: Flag) -> None:
    response = post(api, RULES, {"everyone": True, "version": 2, "position": 1})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["position"]


def test_rules_post__unknown_flag__404(api: APIClient, environment: Environment) -> None:
    response = post(api, "/api/v1/flags/nope/environments/production/rules/", {"version": 1})

    assert_error(response, 404, "not_found")


def test_rules_post__unknown_environment__404(api: APIClient, flag: Flag) -> None:
    response = post(api, "/api/v1/flags/support-chat/environments/nope/rules/", {"version": 2})

    assert_error(response, 404, "not_found")


def test_rules_post__archived_flag__409(api: APIClient, flag: Flag) -> None:
    services.archive_flag(flag=flag, actor=SYSTEM)

    assert_error(post(api, RULES, {"version": 2}), 409, "flag_archived")


def test_rules_post__viewer__403(viewer: User, flag: Flag) -> None:
    response = post(client_for(viewer), RULES, {"version": 2})

    assert_error(response, 403, "forbidden")
    assert FlagState.objects.get(flag=flag).rules == []


def test_rules_get__anonymous__401(anonymous_client: APIClient, flag: Flag) -> None:
    assert_error(anonymous_client.get(RULES), 401, "not_authenticated")


def test_rules_post__outsider_token__403(outsider_token: IssuedToken, flag: Flag) -> None:
    assert_error(post(client_for(outsider_token), RULES, {"version": 2}), 403, "forbidden")


def test_rules_post__token_bound_to_this_environment__201(flag: Flag, environment: Environment) -> None:
    token = make_token(scopes=["read", "write"], environment=environment)

    assert post(client_for(token), RULES, {"everyone": True, "version": 2}).status_code == 201


def test_rules_post__token_bound_to_another_environment__403(flag: Flag) -> None:
    token = make_token(scopes=["read", "write"], environment=make_environment(key="staging"))

    response = post(client_for(token), RULES, {"version": 2})

    assert_error(response, 403, "forbidden")
    assert "staging" in response.json()["detail"]


def test_rule_patch__new_version__200_other_fields_kept(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="pro")

    response = api.patch(RULES + "0/", {"version": 3}, format="json")

    assert response.status_code == 200
    assert response.json()["rules"] == [
        {
            "index": 0,
            "constraints": [PLAN_IN_PRO],
            "segments": [],
            "version": 3,
            "description": "pro",
            "everyone": False,
        }
    ]


def test_rule_patch__invalid_constraint__400_at_path(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment)

    response = api.patch(
        RULES + "0/",
        {"constraints": [{"contextName": "a", "operator": "DATE_BEFORE", "value": 5}]},
        format="json",
    )

    assert_error(response, 400, "invalid_rule")
    assert error_paths(response) == ["constraints[0].value"]


def test_rule_patch__index_past_the_end__404(api: APIClient, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    assert_error(api.patch(RULES + "1/", {"version": 3}, format="json"), 404, "rule_not_found")


def test_rule_delete__first__200_with_remaining_rules(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="a")
    add_rule(flag, environment, description="b")

    response = api.delete(RULES + "0/")

    assert response.status_code == 200
    assert [(r["index"], r["description"]) for r in response.json()["rules"]] == [(0, "b")]


def test_rule_delete__index_past_the_end__404(api: APIClient, flag: Flag) -> None:
    assert_error(api.delete(RULES + "0/"), 404, "rule_not_found")


def test_rule_delete__viewer__403(viewer: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    assert_error(client_for(viewer).delete(RULES + "0/"), 403, "forbidden")


def test_rule_move__to_first__200_in_new_order(api: APIClient, flag: Flag, environment: Environment) -> None:
    for description in ("a", "b", "c"):
        add_rule(flag, environment, description=description)

    response = post(api, RULES + "2/move/", {"to": 0})

    assert response.status_code == 200
    assert [r["description"] for r in response.json()["rules"]] == ["c", "a", "b"]


@pytest.mark.parametrize(("body", "code"), [({"to": 5}, "invalid"), ({"to": -1}, "invalid"), ({}, "invalid")])
def test_rule_move__target_out_of_range_or_missing__400_at_to(
    api: APIClient, flag: Flag, environment: Environment, body: dict[str, Any], code: str
) -> None:
    add_rule(flag, environment)

    response = post(api, RULES + "0/move/", body)

    assert_error(response, 400, code)
    assert error_paths(response) == ["to"]


def test_rule_move__viewer__403(viewer: User, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    assert_error(post(client_for(viewer), RULES + "0/move/", {"to": 0}), 403, "forbidden")


def test_rules_get__any__etag_is_the_rules_tag(api: APIClient, flag: Flag, environment: Environment) -> None:
    add_rule(flag, environment)

    response = api.get(RULES)

    assert response["ETag"] == f'"{response.json()["rules_tag"]}"'


def test_rule_delete__if_match_as_read__200_with_the_new_etag(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    for description in ("a", "b"):
        add_rule(flag, environment, description=description)
    etag = api.get(RULES)["ETag"]

    response = api.delete(RULES + "0/", headers={"If-Match": etag})

    assert response.status_code == 200
    assert [r["description"] for r in response.json()["rules"]] == ["b"]
    assert response["ETag"] not in {etag, None}


def test_rule_delete__rules_changed_since_if_match__412_and_rule_kept(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    for description in ("a", "b"):
        add_rule(flag, environment, description=description)
    etag = api.get(RULES)["ETag"]
    api.delete(RULES + "0/")  # someone else removes "a": "b" is rule 0 now

    response = api.delete(RULES + "0/", headers={"If-Match": etag})

    body = assert_error(response, 412, "rules_changed")
    assert f'"{body["rules_tag"]}"' == api.get(RULES)["ETag"]
    assert [rule["description"] for rule in FlagState.objects.get(flag=flag).rules] == ["b"]


@pytest.mark.parametrize("method", ["patch", "move"])
def test_rule_change__stale_if_match__412(
    api: APIClient, flag: Flag, environment: Environment, method: str
) -> None:
    add_rule(flag, environment)
    add_rule(flag, environment)
    stale = '"0000000000000000"'

    if method == "patch":
        response = api.patch(RULES + "1/", {"description": "x"}, format="json", headers={"If-Match": stale})
    else:
        response = api.post(RULES + "1/move/", {"to": 0}, format="json", headers={"If-Match": stale})

    assert_error(response, 412, "rules_changed")


def test_rules_post__if_match_star_or_weak__accepted(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    weak = "W/" + api.get(RULES)["ETag"]

    first = api.post(RULES, {"everyone": True, "version": 2}, format="json", headers={"If-Match": weak})
    second = api.post(RULES, {"everyone": True, "version": 2}, format="json", headers={"If-Match": "*"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert len(second.json()["rules"]) == 2


# split


def test_split_get__none__null_with_serving_version(api: APIClient, flag: Flag) -> None:
    assert api.get(SPLIT).json() == {
        "flag": "support-chat",
        "environment": "production",
        "serving_version": 1,
        "split": None,
    }


def test_split_put__ten_percent__200_with_seed_and_control_band(api: APIClient, flag: Flag) -> None:
    response = api.put(SPLIT, {"candidate": 3, "weight": 1000}, format="json")

    split = Split.objects.get()
    assert response.status_code == 200
    assert {k: response.json()["split"][k] for k in ("id", "candidate", "weight", "seed", "control")} == {
        "id": split.split_id,
        "candidate": 3,
        "weight": 1000,
        "seed": split.seed,
        "control": {"from": 1000, "to": 2000},
    }


def test_split_put__new_weight__seed_kept(api: APIClient, flag: Flag, environment: Environment) -> None:
    seed = set_split(flag, environment, weight=100).seed

    response = api.put(SPLIT, {"candidate": 3, "weight": 5000}, format="json")

    assert (response.json()["split"]["seed"], response.json()["split"]["weight"]) == (seed, 5000)


def test_split_put__weight_over_half__no_control_band(api: APIClient, flag: Flag) -> None:
    response = api.put(SPLIT, {"candidate": 3, "weight": 5001}, format="json")

    assert response.json()["split"]["control"] is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"candidate": 3, "weight": 10001}, "weight"),
        ({"candidate": 3, "weight": -5}, "weight"),
        ({"candidate": 3, "weight": 10.5}, "weight"),
        ({"candidate": 3}, "weight"),
        ({"weight": 100}, "candidate"),
        ({"candidate": 0, "weight": 100}, "candidate"),
    ],
)
def test_split_put__malformed__400_at_field(
    api: APIClient, flag: Flag, body: dict[str, Any], path: str
) -> None:
    response = api.put(SPLIT, body, format="json")

    assert_error(response, 400, "invalid")
    assert error_paths(response) == [path]


def test_split_put__candidate_is_serving__400_at_candidate(api: APIClient, flag: Flag) -> None:
    response = api.put(SPLIT, {"candidate": 1, "weight": 100}, format="json")

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["candidate"]


def test_split_put__candidate_of_another_flag__400_at_candidate(api: APIClient, flag: Flag) -> None:
    other = make_flag()
    for _ in range(5):
        make_version(flag=other)

    response = api.put(SPLIT, {"candidate": 5, "weight": 100}, format="json")

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["candidate"]
    assert not Split.objects.exists()


def test_split_put__nothing_published__409(api: APIClient, flag: Flag) -> None:
    make_environment(key="staging")

    response = api.put(
        "/api/v1/flags/support-chat/environments/staging/split/", {"candidate": 2, "weight": 1}, format="json"
    )

    assert_error(response, 409, "nothing_published")


def test_split_put__viewer__403(viewer: User, flag: Flag) -> None:
    response = client_for(viewer).put(SPLIT, {"candidate": 3, "weight": 100}, format="json")

    assert_error(response, 403, "forbidden")
    assert not Split.objects.exists()


def test_split_put__token_bound_to_another_environment__403(flag: Flag) -> None:
    token = make_token(scopes=["read", "write"], environment=make_environment(key="staging"))

    response = client_for(token).put(SPLIT, {"candidate": 3, "weight": 100}, format="json")

    assert_error(response, 403, "forbidden")


def test_split_get__anonymous__401(anonymous_client: APIClient, flag: Flag) -> None:
    assert_error(anonymous_client.get(SPLIT), 401, "not_authenticated")


def test_split_delete__active__204_and_cleared(api: APIClient, flag: Flag, environment: Environment) -> None:
    set_split(flag, environment)

    response = api.delete(SPLIT)

    assert (response.status_code, api.get(SPLIT).json()["split"]) == (204, None)


def test_split_delete__none_active__204(api: APIClient, flag: Flag) -> None:
    assert api.delete(SPLIT).status_code == 204


def test_split_delete__viewer__403(viewer: User, flag: Flag, environment: Environment) -> None:
    set_split(flag, environment)

    assert_error(client_for(viewer).delete(SPLIT), 403, "forbidden")
    assert Split.objects.active().exists()


# try a context


def tried(client: APIClient, context: Any) -> dict[str, Any]:
    response = post(client, TRY, {"context": context})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_try__rule_matches__targeting_match_with_rule_and_content(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, description="pro plan")

    body = tried(api, {"targetingKey": "u1", "plan": "pro"})

    assert {k: body[k] for k in ("version", "variant", "reason", "rule_index", "arm", "bucket")} == {
        "version": 2,
        "variant": "v2",
        "reason": "TARGETING_MATCH",
        "rule_index": 0,
        "arm": None,
        "bucket": None,
    }
    assert body["rule"]["description"] == "pro plan"
    assert body["content"]["model"] == "claude-opus-5-5"


def test_try__rule_through_segment_properties__matches(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    services.create_segment(key="pro", name="", constraints=[PLAN_IN_PRO], actor=SYSTEM)
    add_rule(flag, environment, constraints=[], segments=["pro"])

    body = tried(api, {"userId": "u1", "properties": {"plan": "pro"}})

    assert (body["reason"], body["version"]) == ("TARGETING_MATCH", 2)


def test_try__no_rule_no_split__static_serving_version(api: APIClient, flag: Flag) -> None:
    body = tried(api, {"targetingKey": "u1"})

    assert (body["version"], body["reason"], body["content"]["model"]) == (1, "STATIC", "claude-sonnet-5-5")


def test_try__split__arm_and_bucket_from_the_split_seed(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    split = set_split(flag, environment, weight=1000)
    unit_bucket = bucket(split.seed, "user-7")

    body = tried(api, {"targetingKey": "user-7"})

    expected_arm = "candidate" if unit_bucket < 1000 else "control" if unit_bucket < 2000 else "baseline"
    assert (body["reason"], body["bucket"], body["arm"], body["split_id"], body["unit"]) == (
        "SPLIT",
        unit_bucket,
        expected_arm,
        split.split_id,
        "user-7",
    )


def test_try__split_candidate_published_since__everyone_static_on_it(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    set_split(flag, environment)
    services.publish_version(flag=flag, environment=environment, number=3, actor=SYSTEM)

    body = tried(api, {"targetingKey": "u1"})

    assert (body["reason"], body["version"], body["arm"]) == ("STATIC", 3, None)


def test_try__integer_unit__bucketed_as_its_decimal_text(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    split = set_split(flag, environment)

    body = tried(api, {"targetingKey": 42})

    assert (body["bucket"], body["unit"]) == (bucket(split.seed, "42"), "42")


@pytest.mark.parametrize("unit", [True, 4.2, ["u1"], {"id": "u1"}, "", None])
def test_try__unit_not_readable_as_text__default_and_not_counted(
    api: APIClient, flag: Flag, environment: Environment, unit: Any
) -> None:
    set_split(flag, environment)

    body = tried(api, {"targetingKey": unit})

    assert (body["reason"], body["version"], body["arm"], body["bucket"], body["unit"]) == (
        "DEFAULT",
        1,
        None,
        None,
        None,
    )


def test_try__lone_surrogate_unit__default_and_200(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    set_split(flag, environment)

    response = api.post(TRY, '{"context": {"targetingKey": "\\ud800"}}', content_type="application/json")

    assert (response.status_code, response.json()["reason"]) == (200, "DEFAULT")


def test_try__lone_surrogate_against_regex__unreadable_value_does_not_match(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    add_rule(flag, environment, constraints=[{"contextName": "ua", "operator": "REGEX", "value": "bot"}])

    response = api.post(TRY, '{"context": {"ua": "\\ud800bot"}}', content_type="application/json")

    assert response.status_code == 200
    assert response.json()["rule_index"] is None


def test_try__disabled__disabled_without_version(
    api: APIClient, flag: Flag, environment: Environment
) -> None:
    services.set_flag_enabled(flag=flag, environment=environment, enabled=False, actor=SYSTEM)

    body = tried(api, {"targetingKey": "u1"})

    assert (body["reason"], body["version"], body["variant"], body["content"]) == (
        "DISABLED",
        None,
        None,
        None,
    )


def test_try__no_state_in_environment__disabled(api: APIClient, flag: Flag) -> None:
    make_environment(key="staging")

    response = post(api, "/api/v1/flags/support-chat/environments/staging/try/", {"context": {}})

    assert response.json()["reason"] == "DISABLED"


@pytest.mark.parametrize("context", [["targetingKey", "u1"], "u1", 42, None])
def test_try__context_not_an_object__400_at_context(api: APIClient, flag: Flag, context: Any) -> None:
    response = post(api, TRY, {"context": context})

    assert response.status_code == 400
    assert error_paths(response) == ["context"]


def test_try__context_missing__400_at_context(api: APIClient, flag: Flag) -> None:
    response = post(api, TRY, {})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["context"]


def test_try__context_over_64_kib__413(api: APIClient, flag: Flag) -> None:
    context = {"targetingKey": "u1", "blob": "x" * MAX_CONTEXT_BYTES}

    assert_error(post(api, TRY, {"context": context}), 413, "context_too_large")


def test_try__context_just_under_64_kib__200(api: APIClient, flag: Flag) -> None:
    padding = MAX_CONTEXT_BYTES - len(json.dumps({"targetingKey": "u1", "blob": ""}, ensure_ascii=False))
    context = {"targetingKey": "u1", "blob": "x" * padding}

    assert post(api, TRY, {"context": context}).status_code == 200


def test_try__deeply_nested_context__4xx_not_500(api: APIClient, flag: Flag) -> None:
    depth = 50_000
    body = '{"context": {"a": ' + "[" * depth + "]" * depth + "}}"

    response = api.post(TRY, body, content_type="application/json")

    assert 400 <= response.status_code < 500


def test_try__unknown_flag__404(api: APIClient, environment: Environment) -> None:
    response = post(api, "/api/v1/flags/nope/environments/production/try/", {"context": {}})

    assert_error(response, 404, "not_found")


def test_try__viewer__200(viewer: User, flag: Flag) -> None:
    assert post(client_for(viewer), TRY, {"context": {}}).status_code == 200


def test_try__anonymous__401(anonymous_client: APIClient, flag: Flag) -> None:
    assert_error(post(anonymous_client, TRY, {"context": {}}), 401, "not_authenticated")


def test_try__outsider_token__403(outsider_token: IssuedToken, flag: Flag) -> None:
    assert_error(post(client_for(outsider_token), TRY, {"context": {}}), 403, "forbidden")


def test_try__read_token_bound_to_this_environment__200(flag: Flag, environment: Environment) -> None:
    token = make_token(scopes=["read"], environment=environment)

    assert post(client_for(token), TRY, {"context": {}}).status_code == 200


def test_try__token_bound_to_another_environment__403(flag: Flag) -> None:
    token = make_token(scopes=["read"], environment=make_environment(key="staging"))

    assert_error(post(client_for(token), TRY, {"context": {}}), 403, "forbidden")
