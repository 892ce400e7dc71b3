import time
from typing import Any

import anthropic
import httpx2
import pytest

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic

MODEL = "claude-sonnet-5-5"


def batch_request(custom_id: str, text: str, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def wait_ended(client: anthropic.Anthropic, batch_id: str) -> Any:
    for _ in range(100):
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.02)
    raise AssertionError("batch did not end")


def test_batches_create__no_delay__ended_with_results_by_custom_id(
    anthropic_client: anthropic.Anthropic,
) -> None:
    created = anthropic_client.messages.batches.create(
        requests=[batch_request("a", "first [a]"), batch_request("b", "second [b]")]
    )

    ended = wait_ended(anthropic_client, created.id)
    results: dict[str, Any] = {
        line.custom_id: line.result for line in anthropic_client.messages.batches.results(created.id)
    }

    assert created.id.startswith("msgbatch_")
    assert ended.request_counts.succeeded == 2
    assert ended.request_counts.processing == 0
    assert ended.results_url is not None
    assert results["a"].type == "succeeded"
    assert results["a"].message.content[0].text == "You said: first [a]"
    assert results["b"].message.usage.service_tier == "batch"


def test_batches_retrieve__within_delay__in_progress_without_results_url(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.batch_delay = 60

    batch = anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])
    again = anthropic_client.messages.batches.retrieve(batch.id)

    assert again.processing_status == "in_progress"
    assert again.request_counts.processing == 1
    assert again.request_counts.succeeded == 0
    assert again.results_url is None
    assert fake_anthropic.scripts.total() == 0


def test_batches_results__before_end__bad_request(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.batch_delay = 60
    batch = anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])

    response = httpx2.get(
        f"{fake_anthropic.base_url}/v1/messages/batches/{batch.id}/results",
        headers={"x-api-key": DEFAULT_API_KEY, "anthropic-version": "2026-10-21"},
    )

    assert response.status_code == 400


def test_batches_cancel__in_progress__ends_with_requests_canceled(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.batch_delay = 60
    batch = anthropic_client.messages.batches.create(
        requests=[batch_request("a", "x"), batch_request("b", "y")]
    )

    canceling = anthropic_client.messages.batches.cancel(batch.id)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    results = list(anthropic_client.messages.batches.results(batch.id))

    assert canceling.cancel_initiated_at is not None
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled == 2
    assert {line.result.type for line in results} == {"canceled"}
    assert fake_anthropic.scripts.total() == 0


def test_batches_retrieve__ttl_passed_before_processing__requests_expired(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.batch_delay = 60
    fake_anthropic.batch_ttl = 0

    batch = anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])
    ended = wait_ended(anthropic_client, batch.id)

    assert ended.request_counts.expired == 1
    assert [line.result.type for line in anthropic_client.messages.batches.results(batch.id)] == ["expired"]


def test_batches_results__invalid_params__errored_line_others_succeed(
    anthropic_client: anthropic.Anthropic,
) -> None:
    batch = anthropic_client.messages.batches.create(
        requests=[batch_request("ok", "x"), batch_request("bad", "y", model="claude-nonexistent")]
    )
    wait_ended(anthropic_client, batch.id)

    results = {line.custom_id: line.result for line in anthropic_client.messages.batches.results(batch.id)}

    assert results["ok"].type == "succeeded"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "not_found_error"


def test_batches_create__duplicate_custom_id__bad_request(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.create(requests=[batch_request("a", "x"), batch_request("a", "y")])


def test_batches_retrieve__unknown_id__not_found(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve("msgbatch_nope")


def test_batches_list__two_batches__newest_first(anthropic_client: anthropic.Anthropic) -> None:
    first = anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])
    second = anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])

    listed = [batch.id for batch in anthropic_client.messages.batches.list(limit=10)]

    assert listed.index(second.id) < listed.index(first.id)


def test_batches_delete__ended__gone(anthropic_client: anthropic.Anthropic) -> None:
    batch = anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])
    wait_ended(anthropic_client, batch.id)

    anthropic_client.messages.batches.delete(batch.id)

    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve(batch.id)


def test_script_reply__marker_in_prompt__scripted_text_and_stop_reason(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.script_reply("[case-7]", "Paris", stop_reason="stop_sequence")

    scripted = anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Capital? [case-7]"}]
    )
    echoed = anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Capital? [case-8]"}]
    )

    assert scripted.content[0].type == "text"
    assert scripted.content[0].text == "Paris"
    assert scripted.stop_reason == "stop_sequence"
    assert echoed.content[0].type == "text"
    assert echoed.content[0].text == "You said: Capital? [case-8]"


def test_script_verdict__forced_tool__tool_use_with_scripted_input(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.script_verdict("[case-1]", {"passed": False, "reason": "wrong city"})
    tool: Any = {"name": "verdict", "input_schema": {"type": "object"}}

    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Judge the answer.",
        tools=[tool],
        tool_choice={"type": "tool", "name": "verdict"},
        messages=[{"role": "user", "content": "Answer: Lyon [case-1]"}],
    )

    block = message.content[0]
    assert message.stop_reason == "tool_use"
    assert block.type == "tool_use"
    assert block.name == "verdict"
    assert block.input == {"passed": False, "reason": "wrong city"}


def test_times_answered__direct_and_batched__counted_per_marker(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    anthropic_client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "[m1]"}]
    )
    batch = anthropic_client.messages.batches.create(
        requests=[batch_request("a", "[m1]"), batch_request("b", "[m2]")]
    )
    wait_ended(anthropic_client, batch.id)

    assert fake_anthropic.times_answered("[m1]") == 2
    assert fake_anthropic.times_answered("[m2]") == 1
    assert fake_anthropic.repeated_prompts() == {"[m1]": 2}


def test_times_answered__failed_request__not_counted(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(529)

    with pytest.raises(anthropic.OverloadedError):
        anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "[m1]"}]
        )

    assert fake_anthropic.times_answered("[m1]") == 0
