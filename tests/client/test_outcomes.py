"""outcomes(): what a compiled flag serves, part by part, agreeing with resolve()."""

from typing import Any

from flagstaff.engine import BUCKETS, Outcome, Share, compile_segments, flag_from_dict, outcomes, resolve

ENTERPRISE = {"contextName": "plan", "operator": "IN", "values": ["enterprise"]}


def _flag(**overrides: Any) -> Any:
    return flag_from_dict({"key": "support-chat", "enabled": True, "version": 1, **overrides})


def test_outcomes__disabled__only_disabled() -> None:
    assert outcomes(_flag(enabled=False, rules=[{"constraints": [ENTERPRISE], "version": 2}])) == (
        Outcome("disabled"),
    )


def test_outcomes__no_rules_no_split__the_serving_version() -> None:
    assert outcomes(_flag()) == (Outcome("static", version=1),)


def test_outcomes__rule_and_split__rule_then_shares_in_buckets() -> None:
    flag = _flag(
        rules=[{"constraints": [ENTERPRISE], "version": 2}],
        rollout={"id": "split-1", "seed": "s", "candidate": 2, "weight": 1000},
    )

    assert outcomes(flag) == (
        Outcome("rule", version=2, index=0),
        Outcome("split", shares=(Share(1, 9000, "baseline"), Share(2, 1000, "candidate"))),
    )


def test_outcomes__catch_all_rule__nothing_after_it() -> None:
    flag = _flag(
        rules=[{"constraints": [], "version": 2}, {"constraints": [ENTERPRISE], "version": 3}],
        rollout={"id": "split-1", "seed": "s", "candidate": 3, "weight": 1000},
    )

    assert outcomes(flag) == (Outcome("rule", version=2, index=0, catch_all=True),)


def _segment_rule(segment_constraints: list[Any]) -> Any:
    segments = compile_segments({"beta": {"constraints": segment_constraints}})
    rule = {"segments": ["beta"], "version": 2}
    return flag_from_dict({"key": "f", "enabled": True, "version": 1, "rules": [rule]}, segments=segments)


def test_outcomes__rule_with_a_segment_only__not_a_catch_all() -> None:
    assert outcomes(_segment_rule([ENTERPRISE]))[0].catch_all is False


def test_outcomes__rule_whose_segment_is_empty__a_catch_all_as_resolve_treats_it() -> None:
    flag = _segment_rule([])

    assert outcomes(flag) == (Outcome("rule", version=2, index=0, catch_all=True),)
    assert resolve(flag, {"plan": "anything"}).value_version == 2


def test_outcomes__experiment_with_room_left__outside_share_is_the_baseline() -> None:
    flag = _flag(
        experiment={
            "id": "exp-1",
            "seed": "s",
            "arms": [
                {"name": "a", "version": 2, "weight": 2500},
                {"name": "b", "version": 3, "weight": 2500},
            ],
        }
    )

    assert outcomes(flag)[-1].shares == (
        Share(2, 2500, "a"),
        Share(3, 2500, "b"),
        Share(1, 5000, "outside"),
    )


def test_outcomes__split_shares__match_what_resolve_serves() -> None:
    flag = _flag(
        rules=[{"constraints": [ENTERPRISE], "version": 3}],
        rollout={"id": "split-1", "seed": "seed-7", "candidate": 2, "weight": 1000},
    )
    [_, split] = outcomes(flag)
    served = [
        resolve(flag, {"targetingKey": f"user-{n}", "plan": "free"}).value_version for n in range(BUCKETS)
    ]

    expected = {share.version: share.weight / BUCKETS for share in split.shares}
    observed = {version: served.count(version) / len(served) for version in expected}
    # 10 000 units: the candidate's share is within 1.5 points of 10 % (binomial sd 0.3 points).
    assert abs(observed[2] - expected[2]) < 0.015
    assert abs(observed[1] - expected[1]) < 0.015
    assert resolve(flag, {"targetingKey": "user-1", "plan": "enterprise"}).value_version == 3


def test_outcomes__baseline_and_three_candidates__one_share_per_arm_as_resolve_serves() -> None:
    arms: list[dict[str, Any]] = [
        {"name": "baseline", "version": 1, "weight": 4000},
        {"name": "concise", "version": 2, "weight": 2000},
        {"name": "verbose", "version": 3, "weight": 2000},
        {"name": "haiku", "version": 4, "weight": 2000},
    ]
    flag = _flag(experiment={"id": "split-9", "seed": "seed-9", "arms": arms})
    [split] = outcomes(flag)
    served = [resolve(flag, {"targetingKey": f"user-{n}"}).arm for n in range(BUCKETS)]

    assert split.experiment
    assert split.shares == tuple(Share(a["version"], a["weight"], a["name"]) for a in arms)
    # 10 000 units: each share within 1.5 points of its weight (binomial sd at most 0.5 points).
    for share in split.shares:
        assert abs(served.count(share.arm) / BUCKETS - share.weight / BUCKETS) < 0.015
