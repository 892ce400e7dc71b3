import random
from collections.abc import Iterator

import anthropic
import pytest

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals.calls import (
    BACKOFF_CAP_SECONDS,
    CallFailed,
    CallFailure,
    backoff_seconds,
    call_with_retries,
    retry_after,
    stream_once,
)
from flagstaff.render import render_request

CONTENT = {"model": "claude-sonnet-5-5", "max_tokens": 200, "system": "Answer briefly."}


@pytest.fixture
def client(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=fake_anthropic.base_url, max_retries=0) as sdk:
        yield sdk


def failure_of_hi(client: anthropic.Anthropic) -> CallFailure:
    """How a streamed "hi" failed (the test has scripted a failure)."""
    with pytest.raises(CallFailed) as failed:
        stream_once(client, render_request(CONTENT, messages=[{"role": "user", "content": "hi"}]))
    return failed.value.failure


def test_stream_once__answer__text_usage_latency_and_ttft(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.script_reply("[c1]", "Paris is the capital.")

    result = stream_once(
        client, render_request(CONTENT, messages=[{"role": "user", "content": "Capital? [c1]"}])
    )

    assert result.text == "Paris is the capital."
    assert result.output == [{"type": "text", "text": "Paris is the capital."}]
    assert result.stop_reason == "end_turn"
    assert result.usage["output_tokens"] == 6
    assert result.request_id.startswith("req_")
    assert result.ttft_ms is not None
    assert result.latency_ms is not None
    assert result.ttft_ms <= result.latency_ms


def test_stream_once__401__fatal_failure(fake_anthropic: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake_anthropic.api_keys = {"another-key"}

    with pytest.raises(CallFailed) as failed:
        stream_once(client, render_request(CONTENT, messages=[{"role": "user", "content": "hi"}]))

    assert failed.value.failure.kind == "fatal"
    assert failed.value.failure.status == 401
    assert "invalid x-api-key" in failed.value.failure.reason


def test_stream_once__429_with_retry_after__retryable_with_delay(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(429, retry_after=7)

    with pytest.raises(CallFailed) as failed:
        stream_once(client, render_request(CONTENT, messages=[{"role": "user", "content": "hi"}]))

    assert failed.value.failure.kind == "retryable"
    assert failed.value.failure.retry_after == 7


def test_stream_once__unknown_model__case_failure(client: anthropic.Anthropic) -> None:
    content = CONTENT | {"model": "claude-nonexistent"}

    with pytest.raises(CallFailed) as failed:
        stream_once(client, render_request(content, messages=[{"role": "user", "content": "hi"}]))

    assert failed.value.failure.kind == "case"
    assert failed.value.failure.status == 404


def test_stream_once__overloaded_mid_stream__retryable(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.interrupt_next_stream("overloaded_error")

    assert failure_of_hi(client).kind == "retryable"


def test_stream_once__invalid_request_error_mid_stream__case_failure(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.interrupt_next_stream("invalid_request_error")

    failure = failure_of_hi(client)

    assert (failure.kind, failure.reason) == ("case", "stream interrupted: invalid_request_error")


@pytest.mark.parametrize("abrupt", [False, True], ids=["body-ended", "connection-closed"])
def test_stream_once__stream_cut_before_message_stop__retryable(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic, abrupt: bool
) -> None:
    fake_anthropic.cut_next_stream(abrupt=abrupt)

    assert failure_of_hi(client).kind == "retryable"


def test_call_with_retries__stream_cut_then_answer__answered_on_the_second_attempt(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.cut_next_stream(abrupt=True)
    rendered = render_request(CONTENT, messages=[{"role": "user", "content": "hi [c3]"}])

    result = call_with_retries(lambda: stream_once(client, rendered), max_attempts=2, sleep=lambda _: None)

    assert result.text == "You said: hi [c3]"
    assert fake_anthropic.times_answered("[c3]") == 2


def test_call_with_retries__529_twice_then_answer__waits_retry_after_each_time(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(529, retry_after=2, times=2)
    waits: list[float] = []
    rendered = render_request(CONTENT, messages=[{"role": "user", "content": "hi [c2]"}])

    result = call_with_retries(lambda: stream_once(client, rendered), max_attempts=3, sleep=waits.append)

    assert result.stop_reason == "end_turn"
    assert len(waits) == 2
    assert all(2 <= wait <= 2.2 for wait in waits)
    assert fake_anthropic.times_answered("[c2]") == 1


def test_call_with_retries__429_storm__gives_up_after_max_attempts(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(429, times=10)
    rendered = render_request(CONTENT, messages=[{"role": "user", "content": "hi"}])
    waits: list[float] = []

    with pytest.raises(CallFailed) as failed:
        call_with_retries(lambda: stream_once(client, rendered), max_attempts=4, sleep=waits.append)

    assert failed.value.failure.status == 429
    assert len(waits) == 3
    assert len(fake_anthropic.requests) == 4


def test_call_with_retries__fatal__not_retried(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(401, times=5)
    rendered = render_request(CONTENT, messages=[{"role": "user", "content": "hi"}])

    with pytest.raises(CallFailed):
        call_with_retries(lambda: stream_once(client, rendered), max_attempts=4, sleep=lambda _: None)

    assert len(fake_anthropic.requests) == 1


def test_backoff_seconds__no_retry_after__full_jitter_under_the_cap() -> None:
    rng = random.Random(3)

    waits = [backoff_seconds(attempt, None, rng) for attempt in range(1, 12)]

    assert all(
        0 <= wait <= min(BACKOFF_CAP_SECONDS, 0.5 * 2**attempt) for attempt, wait in enumerate(waits, 1)
    )
    assert len(set(waits)) == len(waits)


def test_retry_after__http_date_or_garbage__seconds_or_none() -> None:
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "1.5"}) == 1.5
    assert retry_after({}) is None
