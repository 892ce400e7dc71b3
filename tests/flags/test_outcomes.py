"""What users get, in words: the sentence per environment on the flag page and the flag list."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from controlplane.audit import Actor
from flags import services
from flags.models import Environment, Flag, FlagState, Split
from flags.services.splits import ArmSpec
from flags.views.outcomes import all_segments, for_flags, what_users_get
from tests.factories import make_environment, make_flag, make_version

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
ENTERPRISE = {"contextName": "plan", "operator": "IN", "values": ["enterprise"]}


@pytest.fixture
def production() -> Environment:
    return make_environment(key="production")


def serving_v1(production: Environment, key: str = "support-chat", *, enabled: bool = True) -> Flag:
    flag = make_flag(key=key)
    for _ in range(2):
        make_version(flag=flag)
    services.publish_version(flag=flag, environment=production, number=1, actor=SYSTEM)
    if enabled:
        services.set_flag_enabled(flag=flag, environment=production, enabled=True, actor=SYSTEM)
    return flag


def sentence(flag: Flag, environment: Environment) -> str:
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    split = (
        Split.objects.active().select_related("candidate").filter(flag=flag, environment=environment).first()
    )
    return what_users_get(
        flag=flag, environment=environment, state=state, split=split, segments=all_segments()
    ).sentence


def add_rule(flag: Flag, environment: Environment, **fields: object) -> None:
    rule: dict[str, object] = {"constraints": [ENTERPRISE], "segments": [], "version": 2, "description": ""}
    rule.update(fields)
    services.add_rule(flag=flag, environment=environment, actor=SYSTEM, **rule)  # type: ignore[arg-type]


def test_what_users_get__disabled__code_default_even_with_rules_and_a_split(production: Environment) -> None:
    flag = serving_v1(production)
    add_rule(flag, production)
    services.set_split(flag=flag, environment=production, candidate=2, weight=1000, actor=SYSTEM)
    services.set_flag_enabled(flag=flag, environment=production, enabled=False, actor=SYSTEM)

    assert sentence(flag, production) == "production: disabled, services use their code default"


def test_what_users_get__rule_and_split__rule_then_everyone_else_in_percent(production: Environment) -> None:
    flag = serving_v1(production)
    add_rule(flag, production)
    services.set_split(flag=flag, environment=production, candidate=2, weight=1000, actor=SYSTEM)

    assert sentence(flag, production) == (
        "production: plan is one of enterprise → v2 (rule 1); everyone else → v1 to 90 %, v2 to 10 % (split)"
    )


def test_what_users_get__catch_all_rule__everyone_and_the_split_is_not_mentioned(
    production: Environment,
) -> None:
    flag = serving_v1(production)
    services.set_split(flag=flag, environment=production, candidate=2, weight=1000, actor=SYSTEM)
    add_rule(flag, production, constraints=[], everyone=True)

    assert sentence(flag, production) == "production: everyone → v2 (rule 1)"


def test_what_users_get__no_rules_no_split__everyone_gets_the_serving_version(
    production: Environment,
) -> None:
    assert sentence(serving_v1(production), production) == "production: everyone → v1"


def test_what_users_get__never_published__code_default(production: Environment) -> None:
    assert sentence(make_flag(), production) == "production: not published, services use their code default"


def test_for_flags__many_flags__a_fixed_number_of_queries(
    production: Environment, django_assert_max_num_queries: object
) -> None:
    for index in range(6):
        flag = serving_v1(production, key=f"flag-{index}")
        add_rule(flag, production)
        services.set_split(flag=flag, environment=production, candidate=2, weight=500, actor=SYSTEM)
    flags = list(Flag.objects.with_states())

    with django_assert_max_num_queries(5):  # type: ignore[operator]  # 3, and 2 of rollouts' split words
        sentences = for_flags(flags)

    assert {lines[0].sentence for lines in sentences.values()} == {
        "production: plan is one of enterprise → v2 (rule 1); everyone else → v1 to 95 %, v2 to 5 % (split)"
    }


def test_flag_detail__disabled_flag__the_page_says_code_default(
    viewer: User, production: Environment
) -> None:
    serving_v1(production, enabled=False)
    client = Client()
    client.force_login(viewer)

    body = client.get(reverse("flags:detail", args=["support-chat"])).content.decode()

    assert "What users get now" in body
    assert "disabled, services use their code default" in body


def test_flag_list__rule_and_split__sentence_in_the_row(viewer: User, production: Environment) -> None:
    flag = serving_v1(production)
    add_rule(flag, production)
    services.set_split(flag=flag, environment=production, candidate=2, weight=1000, actor=SYSTEM)
    client = Client()
    client.force_login(viewer)

    body = client.get(reverse("flags:list")).content.decode()

    assert "plan is one of enterprise → <strong>v2 (rule 1)</strong>" in body
    assert "everyone else → <strong>v1 to 90 %, v2 to 10 % (split)</strong>" in body


def test_sentence__experiment_with_baseline_and_two_candidates__each_arm_by_name(
    production: Environment,
) -> None:
    flag = serving_v1(production)
    make_version(flag=flag)
    services.set_experiment_split(
        flag=flag,
        environment=production,
        arms=[ArmSpec("baseline", 1, 5000), ArmSpec("concise", 2, 2500), ArmSpec("verbose", 3, 2500)],
        actor=SYSTEM,
    )

    assert sentence(flag, production) == (
        "production: everyone → v1 (baseline) to 50 %, v2 (concise) to 25 %, "
        "v3 (verbose) to 25 % (experiment)"
    )
