"""The evaluation engine: bucketing, constraint operators, compile errors, resolution."""

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from flagstaff.engine import (
    BUCKETS,
    ConstraintError,
    DefinitionError,
    bucket,
    compile_constraint,
    compile_segments,
    flag_from_dict,
    resolve,
)

UNITS = [f"user-{index}" for index in range(20_000)]


def _matches(constraint: dict[str, Any], context: dict[str, Any]) -> bool:
    return compile_constraint(constraint).matches(context)


def _flag(**overrides: Any) -> dict[str, Any]:
    return {"key": "support-chat", "enabled": True, "version": 3, **overrides}


def _rollout(weight: int, seed: str = "rollout-seed") -> dict[str, Any]:
    return {"id": "rollout:1", "seed": seed, "candidate": 7, "weight": weight}


def _arms(resolutions: list[Any]) -> list[str | None]:
    return [resolution.arm for resolution in resolutions]


# Bucketing


def test_bucket__any_unit__falls_in_range():
    assert all(0 <= bucket("seed", unit) < BUCKETS for unit in UNITS)


def test_bucket__many_units__spread_evenly_over_tenths():
    counts = [0] * 10
    for unit in UNITS:
        counts[bucket("seed", unit) // 1000] += 1
    assert all(1800 < count < 2200 for count in counts)


def test_bucket__other_seed__independent_assignment():
    in_first = {unit for unit in UNITS if bucket("rollout-seed", unit) < 1000}
    in_second = {unit for unit in UNITS if bucket("experiment-seed", unit) < 1000}
    assert 100 < len(in_first & in_second) < 300


def test_bucket__unicode_normal_forms__distinct_units():
    assert bucket("seed", "\u00e9") != bucket("seed", "e\u0301")


def test_bucket__lone_surrogate__raises_unicode_error():
    with pytest.raises(UnicodeEncodeError):
        bucket("seed", "\ud800")


# Rollouts: nesting, stability, control band


def test_resolve__rollout_weight_raised__earlier_candidates_stay_candidates():
    small, large = flag_from_dict(_flag(rollout=_rollout(100))), flag_from_dict(_flag(rollout=_rollout(1000)))
    at_1 = {unit for unit in UNITS if resolve(small, {"targetingKey": unit}).arm == "candidate"}
    at_10 = {unit for unit in UNITS if resolve(large, {"targetingKey": unit}).arm == "candidate"}
    assert at_1 < at_10


def test_resolve__rollout_weight_edited__buckets_unchanged():
    before, after = (
        flag_from_dict(_flag(rollout=_rollout(100))),
        flag_from_dict(_flag(rollout=_rollout(2500))),
    )
    assert all(
        resolve(before, {"targetingKey": unit}).bucket == resolve(after, {"targetingKey": unit}).bucket
        for unit in UNITS[:2000]
    )


def test_resolve__rollout_at_10_percent__candidate_below_weight_control_to_twice():
    flag = flag_from_dict(_flag(rollout=_rollout(1000)))
    for unit in UNITS[:3000]:
        unit_bucket = bucket("rollout-seed", unit)
        expected = "candidate" if unit_bucket < 1000 else "control" if unit_bucket < 2000 else "baseline"
        assert resolve(flag, {"targetingKey": unit}).arm == expected


def test_resolve__rollout_control_arm__serves_baseline():
    flag = flag_from_dict(_flag(rollout=_rollout(1000)))
    controls = [r for unit in UNITS[:500] if (r := resolve(flag, {"targetingKey": unit})).arm == "control"]
    assert controls
    assert {(r.value_version, r.variant, r.reason) for r in controls} == {(3, "v3", "SPLIT")}


def test_resolve__rollout_at_10_percent__control_as_large_as_candidate():
    flag = flag_from_dict(_flag(rollout=_rollout(1000)))
    arms = _arms([resolve(flag, {"targetingKey": unit}) for unit in UNITS])
    assert abs(arms.count("candidate") - arms.count("control")) < 300


def test_resolve__rollout_above_half__no_control_arm():
    flag = flag_from_dict(_flag(rollout=_rollout(5001)))
    assert "control" not in _arms([resolve(flag, {"targetingKey": unit}) for unit in UNITS[:3000]])


def test_resolve__rollout_at_half__rest_is_control():
    flag = flag_from_dict(_flag(rollout=_rollout(5000)))
    assert set(_arms([resolve(flag, {"targetingKey": unit}) for unit in UNITS[:3000]])) == {
        "candidate",
        "control",
    }


def test_resolve__rollout_at_zero__everyone_baseline():
    flag = flag_from_dict(_flag(rollout=_rollout(0)))
    assert set(_arms([resolve(flag, {"targetingKey": unit}) for unit in UNITS[:1000]])) == {"baseline"}


def test_resolve__rollout_at_full_weight__everyone_candidate():
    flag = flag_from_dict(_flag(rollout=_rollout(BUCKETS)))
    resolutions = [resolve(flag, {"targetingKey": unit}) for unit in UNITS[:1000]]
    assert {(r.value_version, r.variant, r.arm) for r in resolutions} == {(7, "v7", "candidate")}


def test_resolve__rollout_unit__carries_split_id_and_bucket():
    resolution = resolve(flag_from_dict(_flag(rollout=_rollout(1000))), {"targetingKey": "user-1"})
    assert (resolution.split_id, resolution.bucket) == ("rollout:1", bucket("rollout-seed", "user-1"))


# Units and stickiness


def test_resolve__split_without_stickiness_value__baseline_not_counted():
    resolution = resolve(flag_from_dict(_flag(rollout=_rollout(BUCKETS))), {"userId": "u1"})
    assert (resolution.value_version, resolution.reason, resolution.arm, resolution.split_id) == (
        3,
        "DEFAULT",
        None,
        None,
    )


@pytest.mark.parametrize("unit", ["", True, 1.5, ["u1"], {"id": "u1"}, None])
def test_resolve__unreadable_unit__not_counted(unit):
    resolution = resolve(flag_from_dict(_flag(rollout=_rollout(BUCKETS))), {"targetingKey": unit})
    assert (resolution.reason, resolution.arm) == ("DEFAULT", None)


def test_resolve__lone_surrogate_unit__not_counted():
    resolution = resolve(flag_from_dict(_flag(rollout=_rollout(BUCKETS))), {"targetingKey": "\ud800"})
    assert (resolution.reason, resolution.arm) == ("DEFAULT", None)


def test_resolve__integer_unit__bucketed_as_decimal_string():
    flag = flag_from_dict(_flag(rollout=_rollout(1000)))
    assert resolve(flag, {"targetingKey": 42}).bucket == bucket("rollout-seed", "42")


def test_resolve__custom_stickiness_in_properties__used_as_unit():
    flag = flag_from_dict(_flag(stickiness="accountId", rollout=_rollout(1000)))
    resolution = resolve(flag, {"targetingKey": "user-1", "properties": {"accountId": "acme"}})
    assert resolution.bucket == bucket("rollout-seed", "acme")


# Experiments


def _experiment(*weights: int) -> dict[str, Any]:
    arms = [
        {"name": f"arm-{index}", "version": 10 + index, "weight": weight}
        for index, weight in enumerate(weights)
    ]
    return {"id": "experiment:4", "seed": "experiment-seed", "arms": arms}


def test_resolve__experiment__arm_by_cumulative_weight():
    flag = flag_from_dict(_flag(experiment=_experiment(2000, 3000, 5000)))
    for unit in UNITS[:2000]:
        unit_bucket = bucket("experiment-seed", unit)
        index = 0 if unit_bucket < 2000 else 1 if unit_bucket < 5000 else 2
        resolution = resolve(flag, {"targetingKey": unit})
        assert (resolution.arm, resolution.value_version, resolution.reason) == (
            f"arm-{index}",
            10 + index,
            "SPLIT",
        )


def test_resolve__baseline_and_three_candidates__shares_match_the_weights():
    flag = flag_from_dict(_flag(experiment=_experiment(4000, 2000, 2000, 2000)))
    counts = dict.fromkeys(("arm-0", "arm-1", "arm-2", "arm-3"), 0)
    for unit in UNITS:
        counts[str(resolve(flag, {"targetingKey": unit}).arm)] += 1
    shares = [counts[arm] / len(UNITS) for arm in sorted(counts)]
    assert shares == pytest.approx([0.4, 0.2, 0.2, 0.2], abs=0.03)


def test_resolve__experiment_weights_moved__a_unit_keeps_its_bucket():
    # The bucket depends on the seed and the unit alone: re-weighting arms moves band edges,
    # never a unit's bucket, so a unit inside an unchanged prefix of bands keeps its arm.
    before = flag_from_dict(_flag(experiment=_experiment(2500, 2500, 2500, 2500)))
    after = flag_from_dict(_flag(experiment=_experiment(2500, 2500, 4000, 1000)))
    for unit in UNITS[:2000]:
        first, second = resolve(before, {"targetingKey": unit}), resolve(after, {"targetingKey": unit})
        assert first.bucket == second.bucket
        if first.bucket is not None and first.bucket < 5000:
            assert first.arm == second.arm


def test_resolve__experiment_unit_outside_arms__serving_version_not_counted():
    flag = flag_from_dict(_flag(experiment=_experiment(1000)))
    outside = [
        resolve(flag, {"targetingKey": unit})
        for unit in UNITS[:500]
        if bucket("experiment-seed", unit) >= 1000
    ]
    assert {(r.value_version, r.reason, r.arm, r.split_id) for r in outside} == {(3, "DEFAULT", None, None)}


def test_resolve__experiment__uses_its_own_seed():
    resolution = resolve(flag_from_dict(_flag(experiment=_experiment(BUCKETS))), {"targetingKey": "user-9"})
    assert (resolution.bucket, resolution.split_id) == (bucket("experiment-seed", "user-9"), "experiment:4")


# Resolution order


def _rule(version: int, plan: str) -> dict[str, Any]:
    return {"constraints": [{"contextName": "plan", "operator": "IN", "values": [plan]}], "version": version}


def test_resolve__disabled__no_value():
    flag = flag_from_dict(_flag(enabled=False, rules=[_rule(5, "pro")], rollout=_rollout(BUCKETS)))
    resolution = resolve(flag, {"targetingKey": "u", "plan": "pro"})
    assert (resolution.value_version, resolution.reason, resolution.variant) == (None, "DISABLED", None)


def test_resolve__disabled_without_version__accepted():
    flag = flag_from_dict({"key": "new-flag", "enabled": False, "version": None})
    assert resolve(flag, {}).reason == "DISABLED"


def test_resolve__matching_rule__wins_over_split():
    flag = flag_from_dict(_flag(rules=[_rule(5, "pro")], rollout=_rollout(BUCKETS)))
    resolution = resolve(flag, {"targetingKey": "u", "plan": "pro"})
    assert (resolution.value_version, resolution.reason, resolution.rule_index, resolution.arm) == (
        5,
        "TARGETING_MATCH",
        0,
        None,
    )


def test_resolve__several_matching_rules__first_wins():
    flag = flag_from_dict(_flag(rules=[_rule(5, "free"), _rule(6, "pro"), _rule(8, "pro")]))
    resolution = resolve(flag, {"plan": "pro"})
    assert (resolution.value_version, resolution.variant, resolution.rule_index) == (6, "v6", 1)


def test_resolve__no_rule_matches__split():
    flag = flag_from_dict(_flag(rules=[_rule(5, "pro")], rollout=_rollout(BUCKETS)))
    assert resolve(flag, {"targetingKey": "u", "plan": "free"}).reason == "SPLIT"


def test_resolve__no_rule_no_split__static_serving_version():
    resolution = resolve(flag_from_dict(_flag(rules=[_rule(5, "pro")])), {"plan": "free"})
    assert (resolution.value_version, resolution.reason, resolution.variant, resolution.bucket) == (
        3,
        "STATIC",
        "v3",
        None,
    )


def test_resolve__rule_without_constraints__matches_everyone():
    assert resolve(flag_from_dict(_flag(rules=[{"version": 4}])), {}).value_version == 4


def test_resolve__rule_with_segment__segment_constraints_anded():
    segments = compile_segments(
        {
            "staff": {
                "constraints": [
                    {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.com"]}
                ]
            }
        }
    )
    flag = flag_from_dict(_flag(rules=[{**_rule(5, "pro"), "segments": ["staff"]}]), segments=segments)
    matched = resolve(flag, {"plan": "pro", "email": "a@acme.com"}).value_version
    unmatched = resolve(flag, {"plan": "pro", "email": "a@other.com"}).value_version
    assert (matched, unmatched) == (5, 3)


# Operators


@pytest.mark.parametrize(
    ("constraint", "context", "expected"),
    [
        ({"operator": "IN", "values": ["pro", "team"]}, {"f": "team"}, True),
        ({"operator": "IN", "values": ["pro"]}, {"f": "Pro"}, False),
        ({"operator": "IN", "values": ["pro"]}, {}, False),
        ({"operator": "IN", "values": []}, {"f": "pro"}, False),
        ({"operator": "IN", "values": ["42"]}, {"f": 42}, True),
        ({"operator": "IN", "values": ["True"]}, {"f": True}, False),
        ({"operator": "NOT_IN", "values": ["pro"]}, {"f": "free"}, True),
        ({"operator": "NOT_IN", "values": ["pro"]}, {"f": "pro"}, False),
        ({"operator": "NOT_IN", "values": ["pro"]}, {}, True),
        ({"operator": "NOT_IN", "values": ["pro"]}, {"f": None}, True),
        ({"operator": "STR_CONTAINS", "values": ["x", "acme"]}, {"f": "team-acme-1"}, True),
        ({"operator": "STR_CONTAINS", "values": ["ACME"]}, {"f": "team-acme-1"}, False),
        ({"operator": "STR_CONTAINS", "values": ["ACME"], "caseInsensitive": True}, {"f": "team-acme"}, True),
        ({"operator": "STR_STARTS_WITH", "values": ["a", "b"]}, {"f": "beta"}, True),
        ({"operator": "STR_STARTS_WITH", "values": ["BE"], "caseInsensitive": True}, {"f": "beta"}, True),
        ({"operator": "STR_STARTS_WITH", "values": ["eta"]}, {"f": "beta"}, False),
        ({"operator": "STR_ENDS_WITH", "values": ["@acme.com"]}, {"f": "a@acme.com"}, True),
        ({"operator": "STR_ENDS_WITH", "values": ["@acme.com"]}, {"f": "a@ACME.com"}, False),
        ({"operator": "STR_ENDS_WITH", "values": []}, {"f": "a"}, False),
        ({"operator": "NUM_EQ", "value": "12"}, {"f": "12.0"}, True),
        ({"operator": "NUM_EQ", "value": "12"}, {"f": 12}, True),
        ({"operator": "NUM_EQ", "value": 12.5}, {"f": 12.5}, True),
        ({"operator": "NUM_EQ", "value": "12"}, {"f": "twelve"}, False),
        ({"operator": "NUM_EQ", "value": "12"}, {"f": True}, False),
        ({"operator": "NUM_GT", "value": "12"}, {"f": "12.5"}, True),
        ({"operator": "NUM_GT", "value": "12"}, {"f": "12"}, False),
        ({"operator": "NUM_GTE", "value": "12"}, {"f": "12"}, True),
        ({"operator": "NUM_LT", "value": "-1e2"}, {"f": "-101"}, True),
        ({"operator": "NUM_LTE", "value": "0.5"}, {"f": ".5"}, True),
        ({"operator": "NUM_LTE", "value": "0.5"}, {"f": "1_0"}, False),
        ({"operator": "NUM_GT", "value": "0"}, {"f": 10**400}, False),
        ({"operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"}, {"f": "2026-01-01T00:00:01Z"}, True),
        ({"operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"}, {"f": "2026-01-01T00:00:00Z"}, False),
        (
            {"operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"},
            {"f": "2026-01-01T01:00:00+02:00"},
            False,
        ),
        (
            {"operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"},
            {"f": datetime(2026, 2, 1, tzinfo=UTC)},
            True,
        ),
        ({"operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"}, {"f": "2026-02-01T00:00:00"}, False),
        ({"operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"}, {"f": "2026-13-01T00:00:00Z"}, False),
        (
            {"operator": "DATE_BEFORE", "value": "2026-01-01T00:00:00.000+01:00"},
            {"f": "2025-12-31T22:59:59Z"},
            True,
        ),
        ({"operator": "SEMVER_EQ", "value": "1.2.3"}, {"f": "1.2.3+build.7"}, True),
        ({"operator": "SEMVER_EQ", "value": "1.2.3"}, {"f": "v1.2.3"}, False),
        ({"operator": "SEMVER_GT", "value": "1.2.3-rc.1"}, {"f": "1.2.3"}, True),
        ({"operator": "SEMVER_GT", "value": "1.2.3-alpha.10"}, {"f": "1.2.3-alpha.9"}, False),
        ({"operator": "SEMVER_GT", "value": "1.2.3-alpha.9"}, {"f": "1.2.3-alpha.beta"}, True),
        ({"operator": "SEMVER_LT", "value": "1.10.0"}, {"f": "1.9.12"}, True),
        ({"operator": "SEMVER_LT", "value": "1.0.0"}, {"f": "1.0.0-alpha"}, True),
        ({"operator": "SEMVER_GTE", "value": "2.0.0"}, {"f": "2.0.0"}, True),
        ({"operator": "SEMVER_LTE", "value": "2.0.0"}, {"f": "2.0.1"}, False),
        ({"operator": "REGEX", "value": "^user-[0-9]+$"}, {"f": "user-17"}, True),
        ({"operator": "REGEX", "value": "acme"}, {"f": "team-acme-1"}, True),
        ({"operator": "REGEX", "value": "^ACME"}, {"f": "acme"}, False),
        ({"operator": "REGEX", "value": "^ACME", "caseInsensitive": True}, {"f": "acme"}, True),
        ({"operator": "REGEX", "value": "^[[:upper:]][[:digit:]]+$"}, {"f": "A12"}, True),
        ({"operator": "REGEX", "value": "^[[:upper:]][[:digit:]]+$"}, {"f": "a12"}, False),
        ({"operator": "REGEX", "value": "^a(?i)b|c$"}, {"f": "C"}, True),
        ({"operator": "REGEX", "value": "^a(?i)b|c$"}, {"f": "AB"}, False),
        ({"operator": "REGEX", "value": "^(a(?i)b)c$"}, {"f": "aBc"}, True),
        ({"operator": "REGEX", "value": "^(a(?i)b)c$"}, {"f": "aBC"}, False),
        ({"operator": "REGEX", "value": "^(?<word>x+)\\z"}, {"f": "xx"}, True),
        ({"operator": "REGEX", "value": "^admin$"}, {"f": "admin\n"}, False),
        ({"operator": "REGEX", "value": "(?m)^admin$"}, {"f": "root\nadmin\nguest"}, True),
        ({"operator": "IN_CIDR", "values": ["10.0.0.0/8", "2001:db8::/32"]}, {"f": "10.1.2.3"}, True),
        ({"operator": "IN_CIDR", "values": ["10.0.0.0/8", "2001:db8::/32"]}, {"f": "2001:db8::7"}, True),
        ({"operator": "IN_CIDR", "values": ["10.0.0.0/8"]}, {"f": "11.0.0.1"}, False),
        ({"operator": "IN_CIDR", "values": ["10.0.0.1"]}, {"f": "10.0.0.1"}, True),
        ({"operator": "IN_CIDR", "values": ["10.0.0.0/8"]}, {"f": "not-an-ip"}, False),
        ({"operator": "IN_CIDR", "values": ["0.0.0.0/0"]}, {"f": 167772161}, False),
    ],
)
def test_constraint__operator__unleash_semantics(constraint, context, expected):
    assert _matches({"contextName": "f", **constraint}, context) is expected


@pytest.mark.parametrize(
    ("constraint", "context", "expected"),
    [
        ({"operator": "IN", "values": ["pro"]}, {"f": "pro"}, False),
        ({"operator": "IN", "values": ["pro"]}, {}, True),
        ({"operator": "NOT_IN", "values": ["pro"]}, {}, False),
        ({"operator": "STR_CONTAINS", "values": ["a"]}, {}, True),
        ({"operator": "NUM_GT", "value": "1"}, {"f": "nan-ish"}, True),
    ],
)
def test_constraint__inverted__flips_result_including_missing(constraint, context, expected):
    assert _matches({"contextName": "f", "inverted": True, **constraint}, context) is expected


def test_constraint__field_in_properties__found():
    assert _matches(
        {"contextName": "plan", "operator": "IN", "values": ["pro"]}, {"properties": {"plan": "pro"}}
    )


def test_constraint__field_top_level_and_in_properties__top_level_wins():
    context = {"plan": "free", "properties": {"plan": "pro"}}
    assert not _matches({"contextName": "plan", "operator": "IN", "values": ["pro"]}, context)


def test_constraint__targeting_key__read_like_any_field():
    assert _matches(
        {"contextName": "targetingKey", "operator": "STR_STARTS_WITH", "values": ["u-"]},
        {"targetingKey": "u-1"},
    )


@time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False)
def test_constraint__current_time_missing__evaluated_at_now():
    after = {"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2026-02-28T00:00:00Z"}
    before = {**after, "operator": "DATE_BEFORE"}
    assert (_matches(after, {}), _matches(before, {})) == (True, False)


def test_constraint__other_date_field_missing__false():
    assert not _matches(
        {"contextName": "signedUpAt", "operator": "DATE_BEFORE", "value": "2999-01-01T00:00:00Z"}, {}
    )


# Compile errors


@pytest.mark.parametrize(
    ("constraint", "path"),
    [
        ({"contextName": "f", "operator": "LIKE", "values": ["a"]}, "c.operator"),
        ({"operator": "IN", "values": ["a"]}, "c.contextName"),
        ({"contextName": "f", "operator": "IN"}, "c.values"),
        ({"contextName": "f", "operator": "IN", "values": ["a", 2]}, "c.values[1]"),
        (
            {"contextName": "f", "operator": "IN", "values": ["a"], "caseInsensitive": True},
            "c.caseInsensitive",
        ),
        ({"contextName": "f", "operator": "IN", "values": ["a"], "inverted": "yes"}, "c.inverted"),
        ({"contextName": "f", "operator": "NUM_GT", "value": "ten"}, "c.value"),
        ({"contextName": "f", "operator": "NUM_GT", "value": True}, "c.value"),
        ({"contextName": "f", "operator": "NUM_GT", "value": "1e999"}, "c.value"),
        ({"contextName": "f", "operator": "NUM_GT", "value": float("nan")}, "c.value"),
        ({"contextName": "f", "operator": "DATE_AFTER", "value": "2026-01-01"}, "c.value"),
        ({"contextName": "f", "operator": "DATE_AFTER", "value": "2026-01-01T00:00:00"}, "c.value"),
        ({"contextName": "f", "operator": "DATE_AFTER", "value": "2026-02-30T00:00:00Z"}, "c.value"),
        ({"contextName": "f", "operator": "SEMVER_EQ", "value": "v1.2.3"}, "c.value"),
        ({"contextName": "f", "operator": "SEMVER_EQ", "value": "1.2"}, "c.value"),
        ({"contextName": "f", "operator": "SEMVER_EQ", "value": "01.2.3"}, "c.value"),
        ({"contextName": "f", "operator": "REGEX", "value": "(unclosed"}, "c.value"),
        ({"contextName": "f", "operator": "REGEX", "value": "^(a)\\1$"}, "c.value"),
        ({"contextName": "f", "operator": "REGEX", "value": "^(?=a)"}, "c.value"),
        ({"contextName": "f", "operator": "REGEX", "value": "^(?<!a)b"}, "c.value"),
        ({"contextName": "f", "operator": "REGEX", "value": "(?x)a b"}, "c.value"),
        ({"contextName": "f", "operator": "REGEX", "value": "[a&&b]"}, "c.value"),
        ({"contextName": "f", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "10.0.0.0/33"]}, "c.values[1]"),
        ("IN", "c"),
    ],
)
def test_compile_constraint__invalid__constraint_error_with_path(constraint, path):
    with pytest.raises(ConstraintError) as raised:
        compile_constraint(constraint, path="c")
    assert raised.value.path == path


def test_compile_constraint__invalid_not_strict__never_matches_even_inverted():
    constraint = {"contextName": "f", "operator": "LIKE", "values": ["a"], "inverted": True}
    assert not compile_constraint(constraint, strict=False).matches({"f": "b"})


def test_compile_constraint__cidr_with_invalid_entry_not_strict__valid_entries_kept():
    constraint = {"contextName": "ip", "operator": "IN_CIDR", "values": ["bogus", "10.0.0.0/8"]}
    assert compile_constraint(constraint, strict=False).matches({"ip": "10.9.9.9"})


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"key": ""}, "key"),
        ({"enabled": "yes"}, "enabled"),
        ({"version": 0}, "version"),
        ({"version": None}, "version"),
        ({"stickiness": 7}, "stickiness"),
        ({"rules": {}}, "rules"),
        ({"rules": [{"version": 4}, {"version": "4"}]}, "rules[1].version"),
        (
            {
                "rules": [
                    {
                        "version": 4,
                        "constraints": [{"contextName": "f", "operator": "IN", "values": ["a", "b", 3]}],
                    }
                ]
            },
            "rules[0].constraints[0].values[2]",
        ),
        ({"rules": [{"version": 4, "segments": ["nope"]}]}, "rules[0].segments[0]"),
        ({"rollout": {**_rollout(100), "weight": 10_001}}, "rollout.weight"),
        ({"rollout": {**_rollout(100), "candidate": 3}}, "rollout.candidate"),
        ({"rollout": {**_rollout(100), "seed": ""}}, "rollout.seed"),
        ({"rollout": _rollout(100), "experiment": _experiment(100)}, "experiment"),
        ({"experiment": _experiment(6000, 5000)}, "experiment.arms"),
        ({"experiment": {**_experiment(), "arms": []}}, "experiment.arms"),
        ({"experiment": _experiment(2000, 2000, 2000, 2000, 2000)}, "experiment.arms"),
        (
            {"experiment": {**_experiment(1, 1), "arms": [{"name": "a", "version": 4, "weight": 1}] * 2}},
            "experiment.arms[1].name",
        ),
        (
            {"experiment": {**_experiment(1), "arms": [{"name": "a", "version": 4, "weight": -1}]}},
            "experiment.arms[0].weight",
        ),
    ],
)
def test_flag_from_dict__invalid__definition_error_with_path(overrides, path):
    with pytest.raises(DefinitionError) as raised:
        flag_from_dict(_flag(**overrides))
    assert raised.value.path == path


def test_flag_from_dict__invalid_constraint__raises_constraint_error():
    rule = {"version": 4, "constraints": [{"contextName": "f", "operator": "REGEX", "value": "("}]}
    with pytest.raises(ConstraintError):
        flag_from_dict(_flag(rules=[rule]))


def test_flag_from_dict__unknown_segment_not_strict__rule_never_matches():
    flag = flag_from_dict(_flag(rules=[{"version": 4, "segments": ["gone"]}]), strict=False)
    assert resolve(flag, {}).reason == "STATIC"


def test_compile_segments__invalid_constraint__path_names_segment():
    with pytest.raises(ConstraintError) as raised:
        compile_segments({"staff": {"constraints": [{"contextName": "f", "operator": "NOPE"}]}})
    assert raised.value.path == "segments.staff.constraints[0].operator"


def test_regex__catastrophic_pattern__answers_without_backtracking():
    # With a backtracking engine this input takes longer than the age of the universe.
    constraint = compile_constraint({"contextName": "f", "operator": "REGEX", "value": "^(a+)+$"})

    assert constraint.matches({"f": "a" * 10_000 + "b"}) is False


def test_regex__negated_posix_class__matches_as_in_re2():
    constraint = compile_constraint({"contextName": "f", "operator": "REGEX", "value": "^[[:^alpha:]]+$"})

    assert constraint.matches({"f": "123"}) is True
    assert constraint.matches({"f": "12a"}) is False


def test_regex__lone_surrogate_in_context__does_not_match():
    constraint = compile_constraint({"contextName": "f", "operator": "REGEX", "value": "x"})

    assert constraint.matches({"f": "\ud800x"}) is False
