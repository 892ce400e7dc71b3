import threading
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from controlplane.audit import Actor
from demo.fake_anthropic import FakeAnthropic
from evals.models import CaseOutput, EvalRun, RunCase, RunState
from evals.services import runs
from evals.services.runs.lifecycle import part_concurrencies
from tests.evals.run_factories import anthropic_at, make_eval_set_version, marker
from tests.factories import make_version

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
CONTENT: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 200,
    "system": [
        {"type": "text", "text": "You answer questions. " * 200, "cache_control": {"type": "ephemeral"}}
    ],
}


def start(cases: int = 5, **kwargs: Any) -> EvalRun:
    version = make_version(content=CONTENT)
    return runs.start_run(
        flag=version.flag,
        eval_set_version=make_eval_set_version(cases),
        config_version=version,
        actor=ACTOR,
        **kwargs,
    )


def test_execute_run__messages__every_case_answered_once_with_cost_and_summary(
    fake_anthropic: FakeAnthropic,
) -> None:
    run = start(6)

    with anthropic_at(fake_anthropic):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "succeeded"
    assert run.state == RunState.SUCCEEDED
    assert run.cases_done == 6
    assert run.cases_reused == 0
    assert fake_anthropic.repeated_prompts() == {}
    assert all(fake_anthropic.times_answered(marker(i)) == 1 for i in range(6))
    outputs = CaseOutput.objects.filter(content_hash=run.content_hash)
    assert outputs.count() == 6
    assert run.cost_micro_usd == sum(o.cost_micro_usd or 0 for o in outputs) > 0
    assert all(o.ttft_ms is not None and o.latency_ms is not None for o in outputs)
    assert run.summary["answered"] == 6
    assert run.summary["cache_hit_ratio"] > 0.5
    assert run.summary["latency_p95_ms"] is not None


def test_execute_run__same_content_again__every_case_reused_at_no_cost(fake_anthropic: FakeAnthropic) -> None:
    first = start(4)
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=first.pk)
        again = runs.start_run(
            flag=first.flag,
            eval_set_version=first.eval_set_version,
            config_version=first.config_version,
            actor=ACTOR,
        )
        runs.execute_run(run_id=again.pk)

    again.refresh_from_db()
    assert again.state == RunState.SUCCEEDED
    assert again.cases_reused == 4
    assert again.cost_micro_usd == 0
    assert fake_anthropic.repeated_prompts() == {}
    assert again.summary["reused"] == 4
    assert again.summary["cost_micro_usd"] == first.__class__.objects.get(pk=first.pk).cost_micro_usd


def test_execute_run__draft_with_same_content_as_version__reuses_its_answers(
    fake_anthropic: FakeAnthropic,
) -> None:
    first = start(3)
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=first.pk)
        draft = runs.start_run(
            flag=first.flag, eval_set_version=first.eval_set_version, draft_content=CONTENT, actor=ACTOR
        )
        runs.execute_run(run_id=draft.pk)

    draft.refresh_from_db()
    assert draft.cases_reused == 3
    assert fake_anthropic.scripts.total() == 3


def test_execute_run__401__fails_with_the_reason_before_a_second_call(fake_anthropic: FakeAnthropic) -> None:
    run = start(5, concurrency=1)
    fake_anthropic.api_keys = {"some-other-key"}

    with anthropic_at(fake_anthropic):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "failed"
    assert run.state == RunState.FAILED
    assert "401" in run.reason
    assert "invalid x-api-key" in run.reason
    assert len(fake_anthropic.requests) == 1
    assert run.cost_micro_usd == 0


def test_execute_run__429_storm__paused_with_reason_and_resumes_without_paying_twice(
    fake_anthropic: FakeAnthropic,
) -> None:
    run = start(4, concurrency=1)
    fake_anthropic.script_reply(marker(0), "first")

    with anthropic_at(fake_anthropic, FLAGSTAFF_EVAL_MAX_ATTEMPTS=3):
        fake_anthropic.fail_next(429, retry_after=0.01, times=3, path="/v1/messages")
        first = runs.execute_run(run_id=run.pk)
        run.refresh_from_db()
        paused_reason = run.reason
        runs.resume_run(run=run, actor=ACTOR)
        second = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert first == "paused"
    assert "429" in paused_reason
    assert "rate_limit_error" in paused_reason
    assert second == "succeeded"
    assert run.cases_done == 4
    assert fake_anthropic.repeated_prompts() == {}
    assert len([r for r in fake_anthropic.requests if r.path == "/v1/messages"]) == 3 + 4


def test_execute_run__529_on_every_try__paused_not_failed(fake_anthropic: FakeAnthropic) -> None:
    run = start(2, concurrency=1)
    fake_anthropic.fail_next(529, times=10, path="/v1/messages")

    with anthropic_at(fake_anthropic, FLAGSTAFF_EVAL_MAX_ATTEMPTS=2):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "paused"
    assert "overloaded_error" in run.reason
    assert run.cases_done == 0
    assert RunCase.objects.filter(run=run, state="claimed").count() == 0


def test_execute_run__no_api_key__failed_with_reason_and_no_call(fake_anthropic: FakeAnthropic) -> None:
    run = start(2)

    with anthropic_at(fake_anthropic, ANTHROPIC_API_KEY=""):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "failed"
    assert "ANTHROPIC_API_KEY" in run.reason
    assert fake_anthropic.requests == []


def test_execute_run__bad_request_for_one_case__that_case_errors_and_the_run_succeeds(
    fake_anthropic: FakeAnthropic,
) -> None:
    run = start(3, concurrency=1)
    fake_anthropic.fail_next(400, message="prompt is too long", path="/v1/messages")

    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    errored = RunCase.objects.get(run=run, state="error")
    assert run.state == RunState.SUCCEEDED
    assert "prompt is too long" in errored.error
    assert run.summary["errors"] == 3  # no scorer: no case has a verdict
    assert run.summary["answered"] == 2


def test_start_run__config_that_cannot_render__refused_naming_the_case(fake_anthropic: FakeAnthropic) -> None:
    version = make_version(content=CONTENT)
    eval_set_version = make_eval_set_version(2)
    content = CONTENT | {"anthropic_version": "2026-10-21", "temperature": 0.2}

    with pytest.raises(runs.RunNotRenderable) as refused:
        runs.start_run(
            flag=version.flag, eval_set_version=eval_set_version, draft_content=content, actor=ACTOR
        )

    assert refused.value.errors[0]["path"] == "cases[0]"
    assert "temperature" in refused.value.errors[0]["message"]
    assert not EvalRun.objects.exists()
    assert fake_anthropic.requests == []


def test_cancel_run__queued__cancelled_and_never_calls(fake_anthropic: FakeAnthropic) -> None:
    run = start(3)

    runs.cancel_run(run=run, actor=ACTOR)
    with anthropic_at(fake_anthropic):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == RunState.CANCELLED
    assert run.state == RunState.CANCELLED
    assert run.finished_at is not None
    assert fake_anthropic.requests == []


def test_cancel_run__finished__conflict() -> None:
    run = start(1)
    runs.cancel_run(run=run, actor=ACTOR)
    run.refresh_from_db()

    with pytest.raises(runs.RunStateConflict):
        runs.cancel_run(run=run, actor=ACTOR)


def test_sweep_runs__run_untouched_past_the_claim_timeout__queued_again_fresh_one_not() -> None:
    stale, fresh = start(1), start(1)
    EvalRun.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(seconds=120))

    with (
        override_settings(FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS=60),
        mock.patch("evals.services.runs.lifecycle.enqueue_run") as enqueued,
    ):
        count = runs.sweep_runs()

    assert count == 1
    assert [c.args[0] for c in enqueued.call_args_list] == [stale.pk]
    assert fresh.pk != stale.pk


@pytest.mark.parametrize(
    ("concurrency", "per_worker", "parts"),
    [(8, 16, [8]), (16, 16, [16]), (32, 16, [16, 16]), (33, 16, [11, 11, 11]), (5, 2, [2, 2, 1])],
)
def test_part_concurrencies__split_as_evenly_as_possible(
    concurrency: int, per_worker: int, parts: list[int]
) -> None:
    with override_settings(FLAGSTAFF_EVAL_CALLS_PER_WORKER=per_worker):
        assert part_concurrencies(concurrency) == parts


def test_start_run__concurrency_over_calls_per_worker__one_task_per_part(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with (
        override_settings(FLAGSTAFF_EVAL_CALLS_PER_WORKER=2),
        mock.patch("evals.tasks.execute_run.apply_async") as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = start(3, concurrency=5)

    assert [c.kwargs["args"] for c in sent.call_args_list] == [(run.pk, 0), (run.pk, 1), (run.pk, 2)]


def test_execute_run__part_out_of_range__missing_and_no_call(fake_anthropic: FakeAnthropic) -> None:
    run = start(2, concurrency=4)

    with anthropic_at(fake_anthropic, FLAGSTAFF_EVAL_CALLS_PER_WORKER=2):
        outcome = runs.execute_run(run_id=run.pk, part=2)

    assert outcome == "missing"
    assert fake_anthropic.requests == []


@pytest.mark.django_db(transaction=True)
def test_execute_run__two_parts_at_once__every_case_answered_once_and_one_part_finishes(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.latency = 0.05
    run = start(24, concurrency=4)
    outcomes: dict[int, str] = {}

    def work(part: int) -> None:
        try:
            outcomes[part] = runs.execute_run(run_id=run.pk, part=part)
        finally:
            connection.close()

    with anthropic_at(fake_anthropic, FLAGSTAFF_EVAL_CALLS_PER_WORKER=2):
        workers = [threading.Thread(target=work, args=(part,)) for part in (0, 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    run.refresh_from_db()
    assert sorted(outcomes.values()) == ["succeeded", "waiting"]
    assert run.state == RunState.SUCCEEDED
    assert run.cases_done == 24
    assert fake_anthropic.repeated_prompts() == {}
    assert all(fake_anthropic.times_answered(marker(i)) == 1 for i in range(24))
    assert RunCase.objects.filter(run=run, attempts=1).count() == 24
