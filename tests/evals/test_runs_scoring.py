from typing import Any

import pytest

from controlplane.audit import Actor
from demo.fake_anthropic import FakeAnthropic
from evals.models import CaseScore, RunCase, RunState
from evals.services import runs
from flags import services as flag_services
from flags.forms import starter_content
from tests.evals.run_factories import anthropic_at, make_eval_set_version, marker
from tests.factories import make_environment, make_flag, make_version

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
CONTENT: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 200}
CONTAINS = {"name": "contains", "key": "mentions-answer"}


def publish_judge(key: str) -> None:
    judge = make_flag(key=key, surface="judge")
    version = make_version(flag=judge, content=starter_content("judge"))
    environment = make_environment()
    flag_services.publish_version(flag=judge, environment=environment, number=version.number, actor=ACTOR)


def start(cases: int, scorers: list[dict[str, Any]]) -> Any:
    version = make_version(content=CONTENT)
    return runs.start_run(
        flag=version.flag,
        eval_set_version=make_eval_set_version(cases, scorers=scorers),
        config_version=version,
        actor=ACTOR,
    )


def test_execute_run__three_of_five_scripted_right__pass_rate_with_wilson_interval(
    fake_anthropic: FakeAnthropic,
) -> None:
    for index in (0, 2, 4):
        fake_anthropic.script_reply(marker(index), f"It is answer {index}.")
    run = start(5, [CONTAINS])

    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert run.summary["pass_rate"] == pytest.approx(0.6)
    low, high = run.summary["pass_rate_interval"]
    assert low == pytest.approx(0.2307, abs=1e-4)  # Wilson 95 % for 3/5 (statsmodels)
    assert high == pytest.approx(0.8824, abs=1e-4)
    assert run.summary["scorers"]["contains"]["mean_score"] == pytest.approx(0.6)
    assert run.scorer_versions == {"contains": 1}
    assert list(
        RunCase.objects.filter(run=run).order_by("case__position").values_list("passed", flat=True)
    ) == [
        True,
        False,
        True,
        False,
        True,
    ]
    failing = CaseScore.objects.filter(passed=False).first()
    assert failing is not None
    assert failing.explanation


def test_execute_run__llm_judge_scripted__verdicts_and_judge_cost_stored(
    fake_anthropic: FakeAnthropic,
) -> None:
    publish_judge("tone")
    fake_anthropic.script_verdict(marker(0), {"passed": True, "explanation": "Polite."})
    fake_anthropic.script_verdict(marker(1), {"passed": False, "explanation": "Rude."})
    run = start(2, [{"name": "llm_judge", "params": {"judge": "tone"}}])

    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    scores = CaseScore.objects.filter(scorer="llm_judge").order_by("output__run_cases__case__position")
    assert run.summary["passed"] == 1
    assert [score.passed for score in scores] == [True, False]
    assert "Rude." in scores[1].explanation
    assert all(score.cost_micro_usd > 0 and score.judge_version_id is not None for score in scores)


def test_execute_run__rerun_with_judge__reuses_answers_and_judge_scores(
    fake_anthropic: FakeAnthropic,
) -> None:
    publish_judge("tone")
    fake_anthropic.script_verdict(marker(0), {"passed": True, "explanation": "Polite."})
    first = start(1, [{"name": "llm_judge", "params": {"judge": "tone"}}])
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=first.pk)
        calls = fake_anthropic.scripts.total()
        again = runs.start_run(
            flag=first.flag,
            eval_set_version=first.eval_set_version,
            config_version=first.config_version,
            actor=ACTOR,
        )
        runs.execute_run(run_id=again.pk)

    again.refresh_from_db()
    assert calls == 2  # the answer and its judgement
    assert fake_anthropic.scripts.total() == 2
    assert again.cases_reused == 1
    assert again.summary["passed"] == 1
