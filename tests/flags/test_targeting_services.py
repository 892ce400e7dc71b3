from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from flags import services
from flags.models import Environment, Flag, FlagState, Segment, Split
from flags.targeting import rules_tag
from tests.factories import audit_mark, audit_since, make_environment, make_flag, make_version

pytestmark = pytest.mark.django_db
PLAN_IN_PRO = {"contextName": "plan", "operator": "IN", "values": ["pro"]}


@pytest.fixture
def actor(editor: AbstractUser) -> Actor:
    return Actor.for_user(editor)


@pytest.fixture
def environment() -> Environment:
    return make_environment(key="production")


def revision(environment: Environment) -> int:
    return Environment.objects.get(pk=environment.pk).revision


def flag_serving_v1(environment: Environment, versions: int = 3) -> Flag:
    """A flag with `versions` versions, v1 published in `environment`."""
    flag = make_flag()
    for _ in range(versions):
        make_version(flag=flag)
    services.publish_version(flag=flag, environment=environment, number=1, actor=Actor.system("tests"))
    return flag


def rules_of(flag: Flag, environment: Environment) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = FlagState.objects.get(flag=flag, environment=environment).rules
    return rules


def add(flag: Flag, environment: Environment, actor: Actor, **overrides: Any) -> FlagState:
    fields: dict[str, Any] = {"constraints": [PLAN_IN_PRO], "segments": [], "version": 2, "description": ""}
    fields.update(overrides)
    return services.add_rule(flag=flag, environment=environment, actor=actor, **fields)


def error_paths(error: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [issue["path"] for issue in error.value.errors]


# create_segment


def test_create_segment__valid__stored_in_engine_shape(actor: Actor) -> None:
    constraint = {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.com"], "x": 1}

    segment = services.create_segment(key="acme", name="", constraints=[constraint], actor=actor)

    assert (segment.name, segment.constraints) == (
        "acme",
        [{"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.com"]}],
    )


def test_create_segment__valid__one_audit_entry(actor: Actor) -> None:
    mark = audit_mark()

    services.create_segment(key="acme", name="Acme", constraints=[PLAN_IN_PRO], actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.target_label, entry.changes["after"]["constraints"]) == (
        "segment.created",
        "acme",
        [PLAN_IN_PRO],
    )


@pytest.mark.parametrize(
    ("constraint", "path"),
    [
        ({"contextName": "a", "operator": "REGEX", "value": "("}, "constraints[0].value"),
        ({"contextName": "a", "operator": "SEMVER_GT", "value": "v1.2"}, "constraints[0].value"),
        (
            {"contextName": "a", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "10.0.0/33"]},
            "constraints[0].values[1]",
        ),
        ({"contextName": "a", "operator": "NUM_GT", "value": "ten"}, "constraints[0].value"),
        ({"contextName": "a", "operator": "DATE_AFTER", "value": "2026-01-01"}, "constraints[0].value"),
        ({"contextName": "a", "operator": "LIKE", "values": ["x"]}, "constraints[0].operator"),
        (
            {"contextName": "a", "operator": "IN", "values": ["x"], "caseInsensitive": True},
            "constraints[0].caseInsensitive",
        ),
        ({"operator": "IN", "values": ["x"]}, "constraints[0].contextName"),
    ],
)
def test_create_segment__invalid_constraint__invalid_at_path_and_nothing_saved(
    actor: Actor, constraint: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        services.create_segment(key="bad", name="", constraints=[constraint], actor=actor)

    assert error_paths(error) == [path]
    assert not Segment.objects.exists()


def test_create_segment__constraints_not_a_list__invalid_at_constraints(actor: Actor) -> None:
    with pytest.raises(InvalidInput) as error:
        services.create_segment(key="bad", name="", constraints={"a": 1}, actor=actor)

    assert error_paths(error) == ["constraints"]


def test_create_segment__duplicate_key__conflict(actor: Actor) -> None:
    services.create_segment(key="acme", name="", constraints=[], actor=actor)

    with pytest.raises(Conflict):
        services.create_segment(key="acme", name="", constraints=[], actor=actor)


def test_create_segment__key_breaks_format__invalid(actor: Actor) -> None:
    with pytest.raises(InvalidInput) as error:
        services.create_segment(key="Not A Key", name="", constraints=[], actor=actor)

    assert error_paths(error) == ["key"]


# update_segment


def test_update_segment__constraints_changed__bumps_only_environments_whose_rules_use_it(
    actor: Actor, environment: Environment
) -> None:
    other = make_environment(key="staging")
    segment = services.create_segment(key="acme", name="", constraints=[], actor=actor)
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, segments=["acme"])
    before = (revision(environment), revision(other))

    services.update_segment(segment=segment, constraints=[PLAN_IN_PRO], actor=actor)

    assert (revision(environment), revision(other)) == (before[0] + 1, before[1])


def test_update_segment__constraints_changed__audit_names_users(
    actor: Actor, environment: Environment
) -> None:
    segment = services.create_segment(key="acme", name="", constraints=[], actor=actor)
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, segments=["acme"])
    mark = audit_mark()

    services.update_segment(segment=segment, constraints=[PLAN_IN_PRO], actor=actor, reason="pro only")

    [entry] = audit_since(mark)
    assert (entry.action, entry.reason, entry.changes["constraints"]["after"], entry.changes["used_by"]) == (
        "segment.updated",
        "pro only",
        [PLAN_IN_PRO],
        [{"flag": flag.key, "environment": "production"}],
    )


def test_update_segment__name_only__no_revision_bump(actor: Actor, environment: Environment) -> None:
    segment = services.create_segment(key="acme", name="", constraints=[], actor=actor)
    add(flag_serving_v1(environment), environment, actor, segments=["acme"])
    before = revision(environment)

    services.update_segment(segment=segment, name="Acme Corp", actor=actor)

    assert (Segment.objects.get().name, revision(environment)) == ("Acme Corp", before)


def test_update_segment__same_values__no_audit(actor: Actor) -> None:
    segment = services.create_segment(key="acme", name="Acme", constraints=[PLAN_IN_PRO], actor=actor)
    mark = audit_mark()

    services.update_segment(segment=segment, name="Acme", constraints=[PLAN_IN_PRO], actor=actor)

    assert audit_since(mark) == []


def test_update_segment__invalid_constraints__invalid_and_unchanged(actor: Actor) -> None:
    segment = services.create_segment(key="acme", name="", constraints=[PLAN_IN_PRO], actor=actor)

    with pytest.raises(InvalidInput) as error:
        services.update_segment(
            segment=segment,
            constraints=[{"contextName": "v", "operator": "SEMVER_EQ", "value": "1"}],
            actor=actor,
        )

    assert error_paths(error) == ["constraints[0].value"]
    assert Segment.objects.get().constraints == [PLAN_IN_PRO]


# delete_segment


def test_delete_segment__unused__deleted_with_audit_entry(actor: Actor) -> None:
    segment = services.create_segment(key="acme", name="", constraints=[], actor=actor)
    mark = audit_mark()

    services.delete_segment(segment=segment, actor=actor)

    [entry] = audit_since(mark)
    assert (Segment.objects.exists(), entry.action, entry.target_label) == (False, "segment.deleted", "acme")


def test_delete_segment__used_by_a_rule__conflict_naming_flag_and_environment(
    actor: Actor, environment: Environment
) -> None:
    segment = services.create_segment(key="acme", name="", constraints=[], actor=actor)
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, segments=["acme"])

    with pytest.raises(Conflict) as error:
        services.delete_segment(segment=segment, actor=actor)

    assert error.value.code == "segment_in_use"
    assert error.value.extra["used_by"] == [{"flag": flag.key, "environment": "production"}]
    assert f"{flag.key} in production" in error.value.detail
    assert Segment.objects.filter(key="acme").exists()


# add_rule


def test_add_rule__valid__stored_in_engine_shape(actor: Actor, environment: Environment) -> None:
    services.create_segment(key="acme", name="", constraints=[], actor=actor)
    flag = flag_serving_v1(environment)

    add(flag, environment, actor, constraints=[PLAN_IN_PRO], segments=["acme"], version=3, description="pro")

    assert rules_of(flag, environment) == [
        {"constraints": [PLAN_IN_PRO], "segments": ["acme"], "version": 3, "description": "pro"}
    ]


def test_add_rule__valid__bumps_revision_and_one_audit_entry(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    before, mark = revision(environment), audit_mark()

    add(flag, environment, actor, constraints=[PLAN_IN_PRO])

    [entry] = audit_since(mark)
    assert revision(environment) == before + 1
    assert (entry.action, entry.flag_key, entry.environment_key, entry.changes["index"]) == (
        "rule.added",
        flag.key,
        "production",
        0,
    )


def test_add_rule__no_position__appended_last(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, version=2)

    add(flag, environment, actor, version=3)

    assert [rule["version"] for rule in rules_of(flag, environment)] == [2, 3]


def test_add_rule__position_zero__inserted_first(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, version=2)

    add(flag, environment, actor, version=3, position=0)

    assert [rule["version"] for rule in rules_of(flag, environment)] == [3, 2]


def test_add_rule__position_past_the_end__invalid_at_position(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, position=1)

    assert error_paths(error) == ["position"]


@pytest.mark.parametrize(
    ("constraints", "path"),
    [
        (
            [PLAN_IN_PRO, {"contextName": "ua", "operator": "REGEX", "value": "(?<=x)y"}],
            "constraints[1].value",
        ),
        (
            [{"contextName": "ip", "operator": "IN_CIDR", "values": ["::1", "bad"]}],
            "constraints[0].values[1]",
        ),
        ([{"contextName": "v", "operator": "SEMVER_LT", "value": "1.2.x"}], "constraints[0].value"),
        ([{"contextName": "n", "operator": "NUM_LTE", "value": "1_000"}], "constraints[0].value"),
        (
            [{"contextName": "t", "operator": "DATE_BEFORE", "value": "2026-01-01T00:00:00"}],
            "constraints[0].value",
        ),
        ([{"contextName": "x", "operator": "EQUALS", "value": "y"}], "constraints[0].operator"),
        ([{"contextName": "x", "operator": "IN", "values": "pro"}], "constraints[0].values"),
        ("plan = pro", "constraints"),
    ],
)
def test_add_rule__invalid_constraint__invalid_at_path_and_nothing_saved(
    actor: Actor, environment: Environment, constraints: Any, path: str
) -> None:
    flag = flag_serving_v1(environment)
    before = revision(environment)

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, constraints=constraints)

    assert error_paths(error) == [path]
    assert (rules_of(flag, environment), revision(environment)) == ([], before)


def test_add_rule__unknown_segment__invalid_at_its_index(actor: Actor, environment: Environment) -> None:
    services.create_segment(key="acme", name="", constraints=[], actor=actor)
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, segments=["acme", "nobody"])

    assert [(issue["path"], issue["message"]) for issue in error.value.errors] == [
        ("segments[1]", "unknown segment 'nobody'")
    ]


def test_add_rule__version_of_another_flag__invalid_at_version(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment, versions=1)
    make_version(flag=flag_serving_v1(environment, versions=2))  # another flag has v2 and v3

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, version=2)

    assert error_paths(error) == ["version"]
    assert "own flag" in error.value.errors[0]["message"]


def test_add_rule__several_problems__every_path_reported(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, constraints=[{"operator": "IN"}], segments=["ghost"], version=9)

    assert error_paths(error) == ["constraints[0].contextName", "segments[0]", "version"]


def test_add_rule__archived_flag__conflict(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    services.archive_flag(flag=flag, actor=actor)

    with pytest.raises(Conflict):
        add(flag, environment, actor)


def test_add_rule__flag_never_published__rule_kept_for_later(actor: Actor, environment: Environment) -> None:
    flag = make_flag()
    make_version(flag=flag)

    add(flag, environment, actor, version=1)

    assert [rule["version"] for rule in rules_of(flag, environment)] == [1]


# update_rule


def test_update_rule__version_only__other_fields_kept(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, constraints=[PLAN_IN_PRO], description="pro")

    services.update_rule(flag=flag, environment=environment, index=0, version=3, actor=actor)

    assert rules_of(flag, environment) == [
        {"constraints": [PLAN_IN_PRO], "segments": [], "version": 3, "description": "pro"}
    ]


def test_update_rule__changed__audit_holds_before_and_after(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor)
    mark = audit_mark()

    services.update_rule(flag=flag, environment=environment, index=0, description="new", actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.changes["before"]["description"], entry.changes["after"]["description"]) == (
        "rule.updated",
        "",
        "new",
    )


def test_update_rule__same_values__no_audit_and_no_bump(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, version=2)
    before, mark = revision(environment), audit_mark()

    services.update_rule(flag=flag, environment=environment, index=0, version=2, actor=actor)

    assert (audit_since(mark), revision(environment)) == ([], before)


def test_update_rule__index_past_the_end__not_found(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor)

    with pytest.raises(NotFound) as error:
        services.update_rule(flag=flag, environment=environment, index=1, version=3, actor=actor)

    assert error.value.code == "rule_not_found"


def test_update_rule__invalid_constraint__invalid_and_rule_unchanged(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, constraints=[PLAN_IN_PRO])

    with pytest.raises(InvalidInput) as error:
        services.update_rule(
            flag=flag,
            environment=environment,
            index=0,
            constraints=[{"contextName": "a", "operator": "REGEX", "value": "[a-"}],
            actor=actor,
        )

    assert error_paths(error) == ["constraints[0].value"]
    assert rules_of(flag, environment)[0]["constraints"] == [PLAN_IN_PRO]


# move_rule and remove_rule


def three_rules(flag: Flag, environment: Environment, actor: Actor) -> None:
    for description in ("a", "b", "c"):
        add(flag, environment, actor, description=description)


def descriptions(flag: Flag, environment: Environment) -> list[str]:
    return [rule["description"] for rule in rules_of(flag, environment)]


def test_move_rule__last_to_first__others_shift_down(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)

    services.move_rule(flag=flag, environment=environment, index=2, to_index=0, actor=actor)

    assert descriptions(flag, environment) == ["c", "a", "b"]


def test_move_rule__moved__bumps_revision_and_audits_from_and_to(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)
    before, mark = revision(environment), audit_mark()

    services.move_rule(flag=flag, environment=environment, index=0, to_index=1, actor=actor)

    [entry] = audit_since(mark)
    assert revision(environment) == before + 1
    assert (entry.action, entry.changes["from"], entry.changes["to"]) == ("rule.moved", 0, 1)


def test_move_rule__same_place__no_audit_and_no_bump(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)
    before, mark = revision(environment), audit_mark()

    services.move_rule(flag=flag, environment=environment, index=1, to_index=1, actor=actor)

    assert (audit_since(mark), revision(environment)) == ([], before)


def test_move_rule__target_past_the_end__invalid_at_to(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)

    with pytest.raises(InvalidInput) as error:
        services.move_rule(flag=flag, environment=environment, index=0, to_index=3, actor=actor)

    assert error_paths(error) == ["to"]


def test_move_rule__index_past_the_end__not_found(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(NotFound):
        services.move_rule(flag=flag, environment=environment, index=0, to_index=0, actor=actor)


def test_remove_rule__middle__removed_and_audited(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)
    mark = audit_mark()

    services.remove_rule(flag=flag, environment=environment, index=1, actor=actor)

    [entry] = audit_since(mark)
    assert descriptions(flag, environment) == ["a", "c"]
    assert (entry.action, entry.changes["rule"]["description"]) == ("rule.removed", "b")


def test_remove_rule__index_past_the_end__not_found_and_rules_kept(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)

    with pytest.raises(NotFound):
        services.remove_rule(flag=flag, environment=environment, index=3, actor=actor)

    assert descriptions(flag, environment) == ["a", "b", "c"]


def test_remove_rule__tag_of_the_rules_as_they_are__removed(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)
    tag = rules_tag(rules_of(flag, environment))

    services.remove_rule(flag=flag, environment=environment, index=0, actor=actor, expected_rules=tag)

    assert descriptions(flag, environment) == ["b", "c"]


@pytest.mark.parametrize(
    "change",
    [
        lambda flag, env, actor, tag: services.remove_rule(
            flag=flag, environment=env, index=1, actor=actor, expected_rules=tag
        ),
        lambda flag, env, actor, tag: services.move_rule(
            flag=flag, environment=env, index=1, to_index=0, actor=actor, expected_rules=tag
        ),
        lambda flag, env, actor, tag: services.update_rule(
            flag=flag, environment=env, index=1, description="z", actor=actor, expected_rules=tag
        ),
        lambda flag, env, actor, tag: services.add_rule(
            flag=flag,
            environment=env,
            constraints=[],
            segments=[],
            version=1,
            description="d",
            position=1,
            actor=actor,
            expected_rules=tag,
        ),
    ],
    ids=["remove", "move", "update", "add"],
)
def test_rule_change__rules_changed_since_read__refused_and_nothing_changed(
    actor: Actor, environment: Environment, change: Any
) -> None:
    flag = flag_serving_v1(environment)
    three_rules(flag, environment, actor)
    read = rules_tag(rules_of(flag, environment))
    services.remove_rule(flag=flag, environment=environment, index=0, actor=actor)  # someone else
    mark = audit_mark()

    with pytest.raises(PreconditionFailed) as error:
        change(flag, environment, actor, read)

    assert (error.value.code, error.value.status_code) == ("rules_changed", 412)
    assert error.value.extra == {"rules_tag": rules_tag(rules_of(flag, environment))}
    assert descriptions(flag, environment) == ["b", "c"]
    assert audit_since(mark) == []


def test_rules_tag__order_matters_key_order_does_not() -> None:
    first, second = {"version": 2, "constraints": []}, {"version": 3, "constraints": []}

    assert rules_tag([first, second]) != rules_tag([second, first])
    assert rules_tag([first]) == rules_tag([{"constraints": [], "version": 2}])


# set_split and clear_split


def split(
    flag: Flag, environment: Environment, actor: Actor, candidate: int = 2, weight: int = 1000
) -> Split:
    return services.set_split(
        flag=flag, environment=environment, candidate=candidate, weight=weight, actor=actor
    )


def test_set_split__none_active__created_with_a_fresh_seed(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)

    created = split(flag, environment, actor)

    assert created.candidate is not None
    assert (created.candidate.number, created.weight, created.cleared_at) == (2, 1000, None)
    assert len(created.seed) == 16
    assert int(created.seed, 16) >= 0


def test_set_split__created__bumps_revision_and_audits_split(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    before, mark = revision(environment), audit_mark()

    created = split(flag, environment, actor)

    [entry] = audit_since(mark)
    assert revision(environment) == before + 1
    assert (entry.action, entry.changes["split"], entry.changes["weight"], entry.changes["baseline"]) == (
        "split.created",
        created.split_id,
        1000,
        1,
    )


def test_set_split__same_candidate_new_weight__seed_and_split_kept(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    first = split(flag, environment, actor, weight=100)

    second = split(flag, environment, actor, weight=2500)

    assert (second.pk, second.seed, Split.objects.get(pk=first.pk).weight) == (first.pk, first.seed, 2500)


def test_set_split__same_candidate_new_weight__audits_weight_change(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    split(flag, environment, actor, weight=100)
    before, mark = revision(environment), audit_mark()

    split(flag, environment, actor, weight=2500)

    [entry] = audit_since(mark)
    assert revision(environment) == before + 1
    assert (entry.action, entry.changes["weight"]) == ("split.weight_changed", {"before": 100, "after": 2500})


def test_set_split__same_candidate_same_weight__no_audit_and_no_bump(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    split(flag, environment, actor)
    before, mark = revision(environment), audit_mark()

    split(flag, environment, actor)

    assert (audit_since(mark), revision(environment)) == ([], before)


def test_set_split__other_candidate__old_cleared_and_new_split_with_new_seed(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    first = split(flag, environment, actor, candidate=2)

    second = split(flag, environment, actor, candidate=3)

    assert second.pk != first.pk
    assert second.seed != first.seed
    assert Split.objects.get(pk=first.pk).cleared_at is not None
    assert list(Split.objects.active()) == [second]


@pytest.mark.parametrize("weight", [-1, 10001])
def test_set_split__weight_out_of_range__invalid_at_weight(
    actor: Actor, environment: Environment, weight: int
) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        split(flag, environment, actor, weight=weight)

    assert error_paths(error) == ["weight"]


@pytest.mark.parametrize("weight", [0, 10000])
def test_set_split__weight_at_a_bound__accepted(actor: Actor, environment: Environment, weight: int) -> None:
    flag = flag_serving_v1(environment)

    assert split(flag, environment, actor, weight=weight).weight == weight


def test_set_split__candidate_is_the_serving_version__invalid_at_candidate(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        split(flag, environment, actor, candidate=1)

    assert error_paths(error) == ["candidate"]


def test_set_split__candidate_this_flag_lacks__invalid_and_no_split(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment, versions=1)
    flag_serving_v1(environment, versions=4)  # another flag with a v4

    with pytest.raises(InvalidInput) as error:
        split(flag, environment, actor, candidate=4)

    assert error_paths(error) == ["candidate"]
    assert not Split.objects.filter(flag=flag).exists()


def test_set_split__nothing_published__conflict(actor: Actor, environment: Environment) -> None:
    flag = make_flag()
    make_version(flag=flag)
    make_version(flag=flag)

    with pytest.raises(Conflict) as error:
        split(flag, environment, actor)

    assert error.value.code == "nothing_published"


def test_clear_split__active__cleared_bumped_and_audited(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    active = split(flag, environment, actor)
    before, mark = revision(environment), audit_mark()

    cleared = services.clear_split(flag=flag, environment=environment, actor=actor, reason="done")

    [entry] = audit_since(mark)
    assert cleared is not None
    assert (cleared.pk, Split.objects.active().exists(), revision(environment)) == (
        active.pk,
        False,
        before + 1,
    )
    assert (entry.action, entry.reason, entry.changes["split"]) == ("split.cleared", "done", active.split_id)


def test_clear_split__none_active__nothing_done(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    before, mark = revision(environment), audit_mark()

    assert services.clear_split(flag=flag, environment=environment, actor=actor) is None
    assert (audit_since(mark), revision(environment)) == ([], before)


def test_publish_version__split_candidate_published__split_ends_in_the_same_audit_entry(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    split = services.set_split(flag=flag, environment=environment, candidate=2, weight=1000, actor=actor)
    mark = audit_mark()

    services.publish_version(flag=flag, environment=environment, number=2, actor=actor)

    assert not Split.objects.active().filter(flag=flag, environment=environment).exists()
    [entry] = audit_since(mark)
    assert (entry.action, entry.changes["split_cleared"]) == ("version.published", split.split_id)


# rules for everyone


def test_add_rule__no_constraint_no_segment__refused_unless_everyone(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, constraints=[])

    assert error_paths(error) == ["constraints"]
    assert "mark the rule 'everyone'" in error.value.errors[0]["message"]


def test_add_rule__everyone__stored_with_its_marking(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)

    add(flag, environment, actor, constraints=[], everyone=True)

    assert rules_of(flag, environment) == [
        {"constraints": [], "segments": [], "version": 2, "description": "", "everyone": True}
    ]


def test_add_rule__everyone_with_a_constraint__refused_at_everyone(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)

    with pytest.raises(InvalidInput) as error:
        add(flag, environment, actor, everyone=True)

    assert error_paths(error) == ["everyone"]


def test_update_rule__everyone_rule_new_version__marking_kept(actor: Actor, environment: Environment) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor, constraints=[], everyone=True)

    services.update_rule(flag=flag, environment=environment, index=0, version=3, actor=actor)

    assert rules_of(flag, environment)[0]["everyone"] is True


def test_update_rule__last_constraint_removed__refused_unless_everyone(
    actor: Actor, environment: Environment
) -> None:
    flag = flag_serving_v1(environment)
    add(flag, environment, actor)

    with pytest.raises(InvalidInput):
        services.update_rule(flag=flag, environment=environment, index=0, constraints=[], actor=actor)
