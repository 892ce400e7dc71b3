from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deprecations.exposures import exposures, runway, watched_catalog
from flags import services as flag_services
from flags.forms import starter_content
from telemetry.models.usage_sync import UsageBucket
from tests.deprecations.factories import content, serve, set_lifecycle
from tests.evals.gate_factories import make_eval_set_version
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version
from tests.rollouts.factories import make_experiment, make_experiment_world, make_rollout, make_world

pytestmark = pytest.mark.django_db

TODAY = date(2026, 12, 5)


def places(model: str) -> set[tuple[str, str, str]]:
    return {(e.place, e.flag, e.path) for e in exposures() if e.model == model}


def test_exposures__serving_rule_and_canary__each_found_with_its_environment() -> None:
    served = serve("claude-opus-5", key="support-chat")
    make_version(flag=served.flag, content=content("claude-opus-4-5"))
    make_version(flag=served.flag, content=content("claude-sonnet-5"))
    flag_services.add_rule(
        flag=served.flag,
        environment=served.environment,
        constraints=[{"contextName": "plan", "operator": "IN", "values": ["enterprise"]}],
        segments=[],
        version=2,
        description="enterprise",
        actor=FACTORY_ACTOR,
    )
    flag_services.set_split(
        flag=served.flag, environment=served.environment, candidate=3, weight=100, actor=FACTORY_ACTOR
    )

    found = [e for e in exposures() if e.flag == "support-chat"]

    assert {(e.model, e.used_as, e.place, e.version, e.detail, e.live) for e in found} == {
        (
            "claude-opus-5",
            "claude-opus-5",
            "serving",
            1,
            "served to everyone not matched by a rule or split",
            True,
        ),
        ("claude-opus-4-5-20251101", "claude-opus-4-5", "rule", 2, "rule 1: enterprise", True),
        (
            "claude-sonnet-5",
            "claude-sonnet-5",
            "canary",
            3,
            f"1 % canary (split-{served.flag.splits.get().pk})",
            True,
        ),
    }
    assert {e.environment for e in found} == {served.environment.key}


def test_exposures__subagent_model__found_at_its_path() -> None:
    flag = make_flag(surface="agent")
    make_version(
        flag=flag,
        content=content(
            "claude-sonnet-5-5",
            max_iterations=5,
            subagents=[
                {
                    "name": "researcher",
                    "description": "Finds facts",
                    "config": content("claude-opus-4-5-20251101"),
                }
            ],
        ),
    )
    flag_services.publish_version(flag=flag, environment=make_environment(), number=1, actor=FACTORY_ACTOR)

    assert places("claude-opus-4-5-20251101") == {("serving", flag.key, "subagents[0].config.model")}
    assert places("claude-sonnet-5-5") == set()  # active without a replacement: not watched


def test_exposures__rollout_candidate__found_not_live_before_it_starts() -> None:
    rollout = make_rollout(make_world())  # the candidate runs claude-haiku-4-5 (legacy)

    [exposure] = [e for e in exposures() if e.place == "rollout"]

    assert (exposure.model, exposure.used_as, exposure.flag, exposure.live) == (
        "claude-haiku-4-5-20251001",
        "claude-haiku-4-5",
        rollout.flag.key,
        False,
    )
    assert exposure.detail == f"rollout #{rollout.pk} (ready)"


def test_exposures__experiment_arms__candidates_found_baseline_not_repeated() -> None:
    experiment = make_experiment(make_experiment_world())

    arms = {(e.detail.split("'")[1], e.model) for e in exposures() if e.place == "experiment_arm"}

    assert arms == {
        ("haiku", "claude-haiku-4-5-20251001"),
        ("sonnet", "claude-sonnet-4-5-20250929"),
        ("short", "claude-haiku-4-5-20251001"),
    }
    assert experiment.flag.key in {e.flag for e in exposures() if e.place == "experiment_arm"}


def test_exposures__judge_of_an_eval_set__found_without_environment() -> None:
    judge = make_version(
        flag=make_flag(key="tone-judge", surface="judge"),
        content={**starter_content("judge"), "model": "claude-haiku-4-5-20251001"},
    )
    make_eval_set_version(
        cases=1, scorers=[{"name": "llm_judge", "key": "tone", "params": {"judge": judge.flag.key}}]
    )

    [exposure] = [e for e in exposures() if e.place == "judge"]

    assert (exposure.flag, exposure.environment, exposure.version, exposure.live) == (
        "tone-judge",
        None,
        1,
        False,
    )


def test_exposures__archived_flag__not_listed() -> None:
    served = serve("claude-opus-5")
    flag_services.archive_flag(flag=served.flag, actor=FACTORY_ACTOR)

    assert places("claude-opus-5") == set()


def test_exposures__many_flags__fixed_number_of_queries() -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            exposures()
        return len(queries)

    serve("claude-opus-5")
    one_flag = count()
    for _ in range(5):
        serve("claude-opus-5")
        serve("claude-opus-4-5")

    assert count() == one_flag


def test_watched_catalog__legacy_deprecated_retired__in_active_without_replacement_out() -> None:
    catalog = watched_catalog()

    assert {
        "claude-opus-5",
        "claude-opus-4-5",
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-1-20250805",
    } <= set(catalog)
    assert "claude-sonnet-5-5" not in catalog


def test_runway__deprecated_model_served__days_left_threshold_and_exposures() -> None:
    served = serve("claude-opus-5", key="support-chat")
    set_lifecycle("claude-opus-5", "deprecated", TODAY + timedelta(days=12))

    [model] = runway(today=TODAY, model="claude-opus-5")

    assert (model.lifecycle, model.days_left, model.threshold, model.severity) == (
        "deprecated",
        12,
        14,
        "medium",
    )
    assert model.runway == "retires in 12 days (2026-12-17)"
    assert [(e.flag, e.environment) for e in model.exposures] == [("support-chat", served.environment.key)]


@time_machine.travel(datetime(2026, 12, 5, 12, 0, tzinfo=UTC), tick=False)
def test_runway__usage_by_api_key__in_flags_or_outside() -> None:
    serve("claude-opus-5")
    for model, key in (("claude-opus-5", "apikey_in"), ("claude-opus-4-1-20250805", "apikey_out")):
        UsageBucket.objects.create(
            bucket_width="1d",
            starting_at=datetime(2026, 12, 4, tzinfo=UTC),
            ending_at=datetime(2026, 12, 5, tzinfo=UTC),
            model=model,
            api_key_id=key,
            uncached_input_tokens=1000,
            cache_read_input_tokens=500,
            output_tokens=200,
            synced_at=datetime(2026, 12, 5, tzinfo=UTC),
        )

    watched = {model.id: model for model in runway(today=TODAY)}

    [inside] = watched["claude-opus-5"].usage
    [outside] = watched["claude-opus-4-1-20250805"].usage
    assert (inside.api_key_id, inside.input_tokens, inside.output_tokens, inside.in_flags) == (
        "apikey_in",
        1500,
        200,
        True,
    )
    assert (outside.api_key_id, outside.in_flags) == ("apikey_out", False)
    assert watched["claude-opus-4-1-20250805"].outside_flags is True
