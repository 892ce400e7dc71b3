from typing import Any

import pytest

from demo.fake_anthropic import FakeAnthropic
from evals.models import CaseOutput, RunCase, RunState
from evals.services import runs
from evals.services.runs.batches import CREATING
from tests.evals.run_factories import anthropic_at, make_eval_set_version, marker
from tests.evals.test_runs_messages import ACTOR
from tests.factories import make_version

pytestmark = pytest.mark.django_db
CONTENT: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 200}


def start(cases: int, scorers: list[dict[str, Any]] | None = None) -> Any:
    version = make_version(content=CONTENT)
    return runs.start_run(
        flag=version.flag,
        eval_set_version=make_eval_set_version(cases, scorers=scorers),
        config_version=version,
        actor=ACTOR,
        mode="batch",
    )


def test_execute_run__batch__created_polled_then_results_stored_at_batch_prices(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.batch_delay = 60
    fake_anthropic.script_reply(marker(1), "It is answer 1.")
    run = start(3, [{"name": "contains"}])

    with anthropic_at(fake_anthropic):
        created = runs.execute_run(run_id=run.pk)
        run.refresh_from_db()
        batch_id = run.batch_id
        polled = runs.execute_run(run_id=run.pk)
        fake_anthropic.batches._batches[batch_id].ends_at = 0
        read = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert (created, polled, read) == ("created", "polling", "read")
    assert batch_id.startswith("msgbatch_")
    assert run.state == RunState.SUCCEEDED
    assert run.summary["passed"] == 1
    assert run.summary["batch"] is True
    assert [r.path for r in fake_anthropic.requests if r.method == "POST"] == ["/v1/messages/batches"]
    outputs = list(CaseOutput.objects.filter(content_hash=run.content_hash))
    assert {o.usage["service_tier"] for o in outputs} == {"batch"}
    assert all(o.mode == "batch" for o in outputs)
    # Batch prices are half the standard ones (flags/data/models.json): output at 5 USD/MTok.
    assert all(
        o.cost_micro_usd == o.usage["input_tokens"] * 1 + o.usage["output_tokens"] * 5 for o in outputs
    )
    assert fake_anthropic.repeated_prompts() == {}


def test_execute_run__batch_id_stored__a_fresh_worker_finds_the_batch_again(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.batch_delay = 60
    run = start(2)
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)
        run.refresh_from_db()
        fake_anthropic.batches._batches[run.batch_id].ends_at = 0
        # What a restarted worker does: load the run by id, find its batch by the stored id.
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "read"
    assert run.cases_done == 2
    assert len([r for r in fake_anthropic.requests if r.path == "/v1/messages/batches"]) == 1


def test_execute_run__batch_results_read_twice__no_case_counted_twice(fake_anthropic: FakeAnthropic) -> None:
    run = start(2)
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)
        runs.execute_run(run_id=run.pk)
        # As if the worker was killed after storing the results, before marking the run finished.
        run.__class__.objects.filter(pk=run.pk).update(state=RunState.RUNNING, finished_at=None)
        again = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert again == "read"
    assert run.state == RunState.SUCCEEDED
    assert run.cases_done == 2
    assert CaseOutput.objects.filter(content_hash=run.content_hash).count() == 2


def test_execute_run__batch_creation_marker_left__paused_never_a_second_batch(
    fake_anthropic: FakeAnthropic,
) -> None:
    run = start(2)
    run.__class__.objects.filter(pk=run.pk).update(batch_id=CREATING)

    with anthropic_at(fake_anthropic):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "paused"
    assert "Console" in run.reason
    assert fake_anthropic.requests == []


def test_execute_run__expired_batch__cases_error_with_reason(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_delay = 60
    fake_anthropic.batch_ttl = 0
    run = start(2)

    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)
        runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert set(RunCase.objects.filter(run=run).values_list("error", flat=True)) == {
        "the batch request was expired"
    }
    assert run.cost_micro_usd == 0


def test_cancel_run__batch_in_progress__batch_cancelled_at_the_api(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_delay = 60
    run = start(2)
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)
        run.refresh_from_db()
        runs.cancel_run(run=run, actor=ACTOR)
        outcome = runs.execute_run(run_id=run.pk)

    batch = fake_anthropic.batches.describe(run.batch_id, base_url=fake_anthropic.base_url)
    assert outcome == "cancelled"
    assert batch["request_counts"]["canceled"] == 2
    assert fake_anthropic.scripts.total() == 0


def test_execute_run__batch_401__failed_with_reason(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.api_keys = {"other"}
    run = start(1)

    with anthropic_at(fake_anthropic):
        outcome = runs.execute_run(run_id=run.pk)

    run.refresh_from_db()
    assert outcome == "failed"
    assert "401" in run.reason
    assert run.batch_id == ""
    assert RunCase.objects.filter(run=run, state="pending").count() == 1
