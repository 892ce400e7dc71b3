"""The invariants the database holds for the evals tables, checked on the real database."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from evals.models import (
    CaseOutput,
    CaseScore,
    EvalCase,
    EvalRun,
    EvalSet,
    EvalSetVersion,
    GatePolicy,
    GateVerdict,
    JudgeCalibration,
    LiveScoreRollup,
    VersionPolicy,
)
from flags.forms import starter_content
from tests.factories import make_flag, make_version

pytestmark = pytest.mark.django_db


def _version(number: int = 1) -> EvalSetVersion:
    eval_set, _ = EvalSet.objects.get_or_create(key="support", defaults={"surface": "chat"})
    return EvalSetVersion.objects.create(
        eval_set=eval_set, number=number, source="api", author_name="a", case_count=0, content_hash="0" * 64
    )


def _output() -> CaseOutput:
    return CaseOutput.objects.create(content_hash="c" * 64, case_hash="d" * 64, output=[], model="m")


def test_eval_set_version__saved_again__refused() -> None:
    version = _version()
    version.message = "changed"
    with pytest.raises(ValidationError):
        version.save()


def test_eval_case__same_hash_twice_in_a_version__refused() -> None:
    version = _version()
    EvalCase.objects.create(version=version, position=0, case_hash="a" * 64, input={"messages": []})
    with pytest.raises(IntegrityError):
        EvalCase.objects.create(version=version, position=1, case_hash="a" * 64, input={"messages": []})


def test_eval_set_version__over_the_case_limit__refused() -> None:
    eval_set = EvalSet.objects.create(key="big", surface="chat")
    with pytest.raises(IntegrityError):
        EvalSetVersion.objects.create(
            eval_set=eval_set,
            number=1,
            source="api",
            author_name="a",
            case_count=10_001,
            content_hash="0" * 64,
        )


def test_case_score__error_with_a_score__refused() -> None:
    with pytest.raises(IntegrityError):
        CaseScore.objects.create(
            output=_output(),
            scorer="exact",
            scorer_version=1,
            params_hash="p" * 64,
            score=0.0,
            passed=False,
            error="boom",
        )


def test_case_score__error_without_score__stored() -> None:
    score = CaseScore.objects.create(
        output=_output(), scorer="exact", scorer_version=1, params_hash="p" * 64, error="boom"
    )
    assert score.passed is None


def test_case_score__score_above_one__refused() -> None:
    with pytest.raises(IntegrityError):
        CaseScore.objects.create(
            output=_output(), scorer="exact", scorer_version=1, params_hash="p" * 64, score=1.5, passed=True
        )


def test_eval_run__both_version_and_draft__refused() -> None:
    version = make_version()
    with pytest.raises(IntegrityError):
        EvalRun.objects.create(
            flag=version.flag,
            config_version=version,
            draft_content={"model": "m"},
            content_hash="h" * 64,
            eval_set_version=_version(),
            created_by="a",
        )


def test_eval_run__done_over_total__refused() -> None:
    version = make_version()
    with pytest.raises(IntegrityError):
        EvalRun.objects.create(
            flag=version.flag,
            config_version=version,
            content_hash="h" * 64,
            eval_set_version=_version(),
            created_by="a",
            cases_total=1,
            cases_done=2,
        )


def test_gate_policy__pinned_without_version__refused() -> None:
    eval_set = EvalSet.objects.create(key="g", surface="chat")
    with pytest.raises(IntegrityError):
        GatePolicy.objects.create(
            flag=make_flag(), eval_set=eval_set, version_policy=VersionPolicy.PINNED, required_pass_rate=0.9
        )


def test_gate_verdict__override_without_reason__refused() -> None:
    from django.utils import timezone

    version = make_version()
    eval_set_version = _version()
    run = EvalRun.objects.create(
        flag=version.flag,
        config_version=version,
        content_hash="h" * 64,
        eval_set_version=eval_set_version,
        created_by="a",
    )
    with pytest.raises(IntegrityError):
        GateVerdict.objects.create(
            config_version=version,
            eval_set_version=eval_set_version,
            policy_hash="p" * 64,
            policy={},
            passed=False,
            run=run,
            override_by="approver",
            overridden_at=timezone.now(),
        )


def test_live_score_rollup__passed_and_errors_over_n__refused() -> None:
    from django.utils import timezone

    with pytest.raises(IntegrityError):
        LiveScoreRollup.objects.create(
            bucket=timezone.now(), flag=make_flag(), scorer="exact", n=2, passed=2, errors=1
        )


def test_judge_calibration__acting__needs_kappa_and_labels() -> None:
    judge = make_version(flag=make_flag(surface="judge"), content=starter_content("judge"))
    acting = JudgeCalibration(judge_version=judge, n_labels=100, agreement=0.9, kappa=0.6, computed_by="a")
    few = JudgeCalibration(judge_version=judge, n_labels=99, agreement=0.9, kappa=0.9, computed_by="a")
    weak = JudgeCalibration(judge_version=judge, n_labels=500, agreement=0.7, kappa=0.59, computed_by="a")
    assert (acting.is_acting, few.is_acting, weak.is_acting) == (True, False, False)
