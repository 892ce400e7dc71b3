from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from flagstaff import Flagstaff, FlagUnavailable
from flagstaff.flag_state import FlagState
from tests.client.fake_controlplane import FakeControlPlane, MakeClient, content, unreachable_url

HELLO: Any = [{"role": "user", "content": "Hello there"}]
Records = Callable[[], list[dict[str, Any]]]
CONTEXT = {"targetingKey": "user-42", "plan": "pro"}


@pytest.fixture
def fs(
    controlplane: FakeControlPlane, make_client: MakeClient, anthropic_client: anthropic.Anthropic
) -> Flagstaff:
    controlplane.set_flag("support-chat", version=2, contents={2: content(2, system="Be brief.")})
    return make_client(anthropic_client=anthropic_client, telemetry=True)


@pytest.fixture
def records(fs: Flagstaff, controlplane: FakeControlPlane) -> Callable[[], list[dict[str, Any]]]:
    """Flush the client's telemetry and return every record the control plane received."""

    def flushed() -> list[dict[str, Any]]:
        assert fs.telemetry is not None
        assert fs.telemetry.flush(timeout=5.0)
        return controlplane.telemetry_records

    return flushed


def test_create__plain__returns_message_and_records_the_call(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic, controlplane: FakeControlPlane
) -> None:
    message = fs.messages.create(flag="support-chat", context=CONTEXT, messages=HELLO, session_id="s-1")

    [record] = records()
    assert message.content[0].text == "You said: Hello there"
    assert record["request_id"] == message._request_id
    assert record["model"] == "claude-sonnet-5-5"
    assert record["stop_reason"] == "end_turn"
    assert record["usage"] == message.usage.model_dump(mode="json", exclude_none=True)
    assert record["latency_ms"] >= 0
    assert "ttft_ms" not in record
    assert record["flag_state"] == f"fs1:production:support-chat:2:-:-:{controlplane.revision}"
    assert (record["user_id"], record["session_id"], record["surface"]) == ("user-42", "s-1", "chat")
    assert "error" not in record
    assert "sample" not in record
    assert record["timestamp"].endswith("+00:00")


def test_create__resolved_config__sent_to_the_api(fs: Flagstaff, fake_anthropic: FakeAnthropic) -> None:
    fs.messages.create(flag="support-chat", context=CONTEXT, messages=HELLO)

    request = fake_anthropic.requests[-1]
    assert (request.body["model"], request.body["max_tokens"]) == ("claude-sonnet-5-5", 102)
    assert request.body["system"] == "Be brief."
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert "anthropic-beta" not in request.headers


def test_create__overrides__win_and_extra_headers_merge(fs: Flagstaff, fake_anthropic: FakeAnthropic) -> None:
    fs.messages.create(flag="support-chat", messages=HELLO, max_tokens=7, extra_headers={"x-trace": "t-1"})

    request = fake_anthropic.requests[-1]
    assert request.body["max_tokens"] == 7
    assert (request.headers["x-trace"], request.headers["anthropic-version"]) == ("t-1", "2026-10-21")


def test_create__beta_config__calls_the_beta_endpoint(
    controlplane: FakeControlPlane, fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    revision = controlplane.set_flag("support-chat", contents={1: content(1, betas=["some-beta-2026-01-01"])})
    assert fs.wait_for_revision(revision, timeout=5.0)

    fs.messages.create(flag="support-chat", messages=HELLO)

    assert fake_anthropic.requests[-1].headers["anthropic-beta"] == "some-beta-2026-01-01"
    assert len(records()) == 1


def test_create__stream__yields_sdk_events_and_records_ttft_and_merged_usage(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.05

    with fs.messages.create(flag="support-chat", context=CONTEXT, messages=HELLO, stream=True) as stream:
        events = list(stream)

    [record] = records()
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds
    delta_usage = next(event.usage for event in events if event.type == "message_delta")
    start_usage = events[0].message.usage
    assert record["request_id"] == stream.request_id
    assert record["usage"]["output_tokens"] == delta_usage.output_tokens  # from the last delta
    assert record["usage"]["cache_creation"] == start_usage.cache_creation.model_dump()  # from the start
    assert record["usage"]["service_tier"] == "standard"
    assert record["stop_reason"] == "end_turn"
    assert 50 <= record["ttft_ms"] <= record["latency_ms"]


def test_create__stream_closed_early__recorded_once(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    stream = fs.messages.create(flag="support-chat", messages=HELLO, stream=True)
    start = next(stream)

    stream.close()
    stream.close()

    [record] = records()
    assert "stop_reason" not in record
    assert record["usage"] == start.message.usage.model_dump(mode="json", exclude_none=True)


def test_create__rate_limited__error_recorded_and_reraised(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.fail_next(429, retry_after=1)

    with pytest.raises(anthropic.RateLimitError) as raised:
        fs.messages.create(flag="support-chat", messages=HELLO)

    [record] = records()
    assert record["error"] == {"type": "rate_limit_error", "status": 429}
    assert record["request_id"] == raised.value.request_id
    assert record["model"] == "claude-sonnet-5-5"
    assert "usage" not in record


def test_create__stream_interrupted__error_recorded_and_reraised(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.interrupt_next_stream("overloaded_error")
    stream = fs.messages.create(flag="support-chat", messages=HELLO, stream=True)

    with pytest.raises(anthropic.APIStatusError):
        list(stream)

    [record] = records()
    assert record["error"] == {"type": "overloaded_error", "status": 200}
    assert record["request_id"] == stream.request_id
    assert record["ttft_ms"] <= record["latency_ms"]


def test_create__api_unreachable__connection_error_recorded(
    controlplane: FakeControlPlane, fs: Flagstaff, records: Records
) -> None:
    fs.anthropic_client = None
    fs._messages = None
    with anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=unreachable_url(), max_retries=0) as client:
        fs.anthropic_client = client

        with pytest.raises(anthropic.APIConnectionError):
            fs.messages.create(flag="support-chat", messages=HELLO)

    [record] = records()
    assert record["error"] == {"type": "connection_error"}
    assert record["request_id"].startswith("fsreq_")


def test_create__flag_disabled_without_default__raises_flag_unavailable(
    controlplane: FakeControlPlane, fs: Flagstaff, fake_anthropic: FakeAnthropic
) -> None:
    revision = controlplane.set_flag("support-chat", version=None, enabled=False)
    assert fs.wait_for_revision(revision, timeout=5.0)

    with pytest.raises(FlagUnavailable) as raised:
        fs.messages.create(flag="support-chat", messages=HELLO)

    assert raised.value.resolved.reason == "DISABLED"
    assert fake_anthropic.requests == []


def test_create__flag_disabled_with_default__calls_with_default(
    controlplane: FakeControlPlane, fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    revision = controlplane.set_flag("support-chat", version=None, enabled=False)
    assert fs.wait_for_revision(revision, timeout=5.0)

    fs.messages.create(flag="support-chat", messages=HELLO, default=content(50))

    assert fake_anthropic.requests[-1].body["max_tokens"] == 150
    [record] = records()
    assert FlagState.decode(record["flag_state"]).version is None


def test_create__sampled_flag__record_carries_input_and_output(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    fs.sample_rates = {"support-chat": 1.0}

    fs.messages.create(flag="support-chat", messages=HELLO)
    with fs.messages.create(flag="support-chat", messages=HELLO, stream=True) as stream:
        list(stream)

    plain, streamed = records()
    expected = {"input": HELLO, "output": [{"type": "text", "text": "You said: Hello there"}]}
    assert plain["sample"] == expected
    assert streamed["sample"] == expected


def test_create__flag_not_sampled__no_sample(
    fs: Flagstaff, records: Records, fake_anthropic: FakeAnthropic
) -> None:
    fs.sample_rates = {"other-flag": 1.0}

    fs.messages.create(flag="support-chat", messages=HELLO)

    assert "sample" not in records()[0]


def test_create__telemetry_refused__call_still_succeeds(
    controlplane: FakeControlPlane, fs: Flagstaff, fake_anthropic: FakeAnthropic
) -> None:
    controlplane.fail_telemetry(400)

    message = fs.messages.create(flag="support-chat", messages=HELLO)

    assert message.stop_reason == "end_turn"
    assert fs.telemetry is not None
    assert fs.telemetry.flush(timeout=5.0)
    assert fs.telemetry.stats().dropped == 1


def test_messages__no_anthropic_client__clear_error(
    controlplane: FakeControlPlane, make_client: MakeClient
) -> None:
    with pytest.raises(RuntimeError, match="anthropic_client"):
        make_client().messages  # noqa: B018
