"""Judge calibration: labels, the judge's verdicts through the fake API, κ, acting or advisory."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.test import override_settings

from controlplane.audit import Actor
from controlplane.errors import InvalidInput
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals.agreement import cohens_kappa
from evals.calibration_status import judge_status
from evals.models import EvalSetVersion, JudgeCalibration, JudgeVerdict
from evals.services import calibration, eval_sets
from evals.tasks import calibrate_judge
from flags.forms import starter_content
from flags.models import ConfigVersion
from tests.factories import make_flag, make_version

ACTOR = Actor.system("tests")


def test_cohens_kappa__published_two_by_two_table__is_zero_point_four() -> None:
    # Wikipedia, "Cohen's kappa", worked example: 50 proposals, both yes 20, A yes/B no 5,
    # A no/B yes 10, both no 15; p_o = 0.7, p_e = 0.5, κ = 0.4.
    pairs = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15
    result = cohens_kappa(pairs)
    assert (result.n, result.agreement) == (50, pytest.approx(0.7))
    assert result.kappa == pytest.approx(0.4)


def test_cohens_kappa__everyone_says_pass__undefined_not_perfect() -> None:
    assert cohens_kappa([(True, True)] * 10).kappa is None


def test_cohens_kappa__no_pairs__undefined() -> None:
    assert cohens_kappa([]).agreement is None


@pytest.fixture
def judged(db: None, fake_anthropic: FakeAnthropic) -> Iterator[tuple[ConfigVersion, EvalSetVersion]]:
    """A judge whose fake verdict is 'the answer says yes', and a set of 120 cases."""
    fake_anthropic.forced_tool_input = lambda name, body: {
        "passed": "yes" in body["messages"][0]["content"].split("<answer>")[1],
        "explanation": "Looked for yes.",
    }
    judge = make_version(flag=make_flag(key="tone", surface="judge"), content=starter_content("judge"))
    eval_set = eval_sets.create_eval_set(key="tone-set", surface="chat", actor=ACTOR)
    cases = [{"input": {"messages": [{"role": "user", "content": f"Question {i}"}]}} for i in range(120)]
    version = eval_sets.create_eval_set_version(eval_set=eval_set, cases=cases, actor=ACTOR)
    with override_settings(ANTHROPIC_API_KEY=DEFAULT_API_KEY, ANTHROPIC_BASE_URL=fake_anthropic.base_url):
        yield judge, version


def _labels(count: int, *, disagree_every: int = 0) -> bytes:
    lines = []
    for i in range(count):
        says_yes = i % 2 == 0
        human = says_yes if not disagree_every or i % disagree_every else not says_yes
        lines.append(json.dumps({"case": i, "response": "yes, done" if says_yes else "no", "passed": human}))
    return "\n".join(lines).encode()


def test_judge_labels__few_labels__calibrated_but_advisory(
    judged: tuple[ConfigVersion, EvalSetVersion], fake_anthropic: FakeAnthropic
) -> None:
    judge, version = judged
    calibration.import_labels(judge=judge.flag, version=version, data=_labels(10), actor=ACTOR)
    result = calibration.judge_labels(judge_version=judge, actor=ACTOR)
    assert (result.n_labels, result.kappa, len(fake_anthropic.requests)) == (10, 1.0, 10)
    status = judge_status(judge)
    assert status.acting is False
    assert status.words.startswith("Advisory: 10 of the 100 labels needed")


def test_judge_labels__hundred_agreeing_labels__acting(judged: tuple[ConfigVersion, EvalSetVersion]) -> None:
    judge, version = judged
    calibration.import_labels(
        judge=judge.flag, version=version, data=_labels(100, disagree_every=10), actor=ACTOR
    )
    calibration.judge_labels(judge_version=judge, actor=ACTOR)
    status = judge_status(judge)
    assert status.calibration is not None
    assert (status.calibration.n_labels, status.calibration.agreement) == (100, 0.9)
    assert status.calibration.kappa == pytest.approx(0.8)
    assert status.acting is True
    assert status.words.startswith("Acting: agrees with people at κ 0.80 on 100 labels")


def test_judge_labels__weak_agreement__advisory_with_the_reason(
    judged: tuple[ConfigVersion, EvalSetVersion],
) -> None:
    judge, version = judged
    calibration.import_labels(
        judge=judge.flag, version=version, data=_labels(100, disagree_every=3), actor=ACTOR
    )
    calibration.judge_labels(judge_version=judge, actor=ACTOR)
    assert judge_status(judge).words.startswith("Advisory: κ ")
    assert "is below 0.6" in judge_status(judge).words


def test_calibrate_judge_task__rerun__pays_only_for_new_labels(
    judged: tuple[ConfigVersion, EvalSetVersion], fake_anthropic: FakeAnthropic
) -> None:
    judge, version = judged
    calibration.import_labels(judge=judge.flag, version=version, data=_labels(4), actor=ACTOR)
    calibrate_judge(judge.pk, "tests")
    calibrate_judge(judge.pk, "tests")
    assert len(fake_anthropic.requests) == 4
    assert JudgeVerdict.objects.count() == 4
    assert JudgeCalibration.objects.filter(judge_version=judge).count() == 2


def test_judge_labels__api_down__errors_are_left_out_of_kappa(
    judged: tuple[ConfigVersion, EvalSetVersion], fake_anthropic: FakeAnthropic
) -> None:
    judge, version = judged
    calibration.import_labels(judge=judge.flag, version=version, data=_labels(4), actor=ACTOR)
    fake_anthropic.fail_next(401, error_type="authentication_error", times=10)
    result = calibration.judge_labels(judge_version=judge, actor=ACTOR)
    assert (result.n_labels, result.kappa) == (0, None)
    assert set(JudgeVerdict.objects.values_list("passed", flat=True)) == {None}


def test_import_labels__bad_lines__each_named_and_nothing_saved(
    judged: tuple[ConfigVersion, EvalSetVersion],
) -> None:
    judge, version = judged
    data = b'{"case": 0, "response": "yes", "passed": true}\n{"case": 999, "response": "", "passed": "y"}\n'
    data += b'{"case": 0, "response": "again", "passed": false}\nnope\n'
    with pytest.raises(InvalidInput) as raised:
        calibration.import_labels(judge=judge.flag, version=version, data=data, actor=ACTOR)
    assert [(e["line"], e["path"]) for e in raised.value.errors] == [
        (2, "case"),
        (2, "response"),
        (2, "passed"),
        (3, "case"),
        (4, ""),
    ]
    assert judge.flag.judge_labels.count() == 0


def test_set_label__flag_not_a_judge__refused(judged: tuple[ConfigVersion, EvalSetVersion]) -> None:
    _, version = judged
    with pytest.raises(InvalidInput) as raised:
        calibration.set_label(
            judge=make_flag(),
            case=version.cases.get(position=0),
            response="x",
            human_passed=True,
            actor=ACTOR,
        )
    assert raised.value.code == "not_a_judge"


def test_set_label__changed_answer__drops_the_stale_verdicts(
    judged: tuple[ConfigVersion, EvalSetVersion],
) -> None:
    judge, version = judged
    case = version.cases.get(position=0)
    calibration.set_label(judge=judge.flag, case=case, response="yes", human_passed=True, actor=ACTOR)
    calibration.judge_labels(judge_version=judge, actor=ACTOR)
    calibration.set_label(judge=judge.flag, case=case, response="no", human_passed=True, actor=ACTOR)
    assert JudgeVerdict.objects.count() == 0
