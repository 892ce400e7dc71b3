import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx2
import pytest

from demo.fake_anthropic import (
    DEFAULT_ADMIN_KEY,
    DEFAULT_API_KEY,
    FakeAnthropic,
    cost_result,
    report_bucket,
    usage_result,
)

MODEL = "claude-sonnet-5-5"
HELLO: Any = [{"role": "user", "content": "Hello there"}]
LONG_SYSTEM: Any = [{"type": "text", "text": "x" * 4000, "cache_control": {"type": "ephemeral"}}]
DAY_ONE = datetime(2026, 11, 1, tzinfo=UTC)


def admin_get(fake: FakeAnthropic, path: str, key: str = DEFAULT_ADMIN_KEY, **params: Any) -> httpx2.Response:
    return httpx2.get(
        fake.base_url + path,
        params={"starting_at": "2026-11-01T00:00:00Z", **params},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )


def daily_usage_buckets(days: int) -> list[dict[str, Any]]:
    return [
        report_bucket(DAY_ONE + timedelta(days=day), [usage_result(model=MODEL, output_tokens=day)])
        for day in range(days)
    ]


def test_messages_create__plain_prompt__echoes_with_usage_and_request_id(
    anthropic_client: anthropic.Anthropic,
) -> None:
    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: Hello there"
    assert message.id.startswith("msg_")
    assert message._request_id is not None
    assert message._request_id.startswith("req_")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 3
    assert message.usage.output_tokens == 6
    assert message.usage.service_tier == "standard"


def test_messages_create__reply_longer_than_max_tokens__truncated_with_max_tokens(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.reply = "word " * 50

    message = anthropic_client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.content[0].type == "text"
    assert len(message.content[0].text) == 20


def test_messages_create__stop_reason_override__refusal_with_details(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.stop_reason = "refusal"
    fake_anthropic.stop_details = {"type": "refusal", "category": "cyber", "explanation": None}

    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert message.stop_reason == "refusal"
    assert message.stop_details is not None
    assert message.stop_details.category == "cyber"


def test_messages_create__sparse_usage__optional_fields_absent(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.sparse_usage = True

    message = anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert message.usage.cache_read_input_tokens is None
    assert message.usage.service_tier is None


def test_messages_stream__helper__assembles_text_and_final_usage(
    anthropic_client: anthropic.Anthropic,
) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.request_id

    assert len(chunks) > 1
    assert "".join(chunks) == "You said: Hello there"
    assert final.usage.input_tokens == 3
    assert final.usage.output_tokens == 6
    assert final.stop_reason == "end_turn"
    assert request_id is not None
    assert request_id.startswith("req_")


def test_messages_create__stream_true__events_in_api_order(anthropic_client: anthropic.Anthropic) -> None:
    events = list(anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True))

    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_messages_stream__raw_sse__includes_ping_after_block_start(fake_anthropic: FakeAnthropic) -> None:
    response = httpx2.post(
        fake_anthropic.base_url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True},
        headers={"x-api-key": DEFAULT_API_KEY, "anthropic-version": "2023-06-01"},
    )

    names = [
        line.removeprefix("event: ") for line in response.text.splitlines() if line.startswith("event: ")
    ]
    assert response.headers["content-type"] == "text/event-stream"
    assert names.index("ping") == names.index("content_block_start") + 1


def test_messages_stream__interrupted__raises_with_error_type(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.interrupt_next_stream("overloaded_error")

    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream,
    ):
        stream.until_done()

    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"


def test_messages_create__cached_system_sent_twice__creation_then_read(
    anthropic_client: anthropic.Anthropic,
) -> None:
    first = anthropic_client.messages.create(model=MODEL, max_tokens=100, system=LONG_SYSTEM, messages=HELLO)
    second = anthropic_client.messages.create(model=MODEL, max_tokens=100, system=LONG_SYSTEM, messages=HELLO)

    assert first.usage.cache_creation_input_tokens == 1000
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == 1000
    assert second.usage.input_tokens == 3


def test_messages_create__one_hour_ttl_tool__creation_split_by_ttl(
    anthropic_client: anthropic.Anthropic,
) -> None:
    tool: Any = {
        "name": "lookup",
        "description": "y" * 400,
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }

    message = anthropic_client.messages.create(
        model=MODEL, max_tokens=100, tools=[tool], system=LONG_SYSTEM, messages=HELLO
    )

    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens > 100
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 1000


def test_messages_create__top_level_cache_control__breakpoint_on_last_block(
    anthropic_client: anthropic.Anthropic,
) -> None:
    conversation: Any = [{"role": "user", "content": "z" * 400}]

    first = anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=conversation, cache_control={"type": "ephemeral", "ttl": "1h"}
    )

    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 100
    assert first.usage.input_tokens == 0


def test_messages_create__temperature_on_2026_10_21__bad_request(
    anthropic_client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(
            model=MODEL, max_tokens=100, messages=HELLO, extra_body={"temperature": 0.5}
        )

    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message == "temperature: Extra inputs are not permitted"


def test_messages_create__temperature_on_2023_06_01__accepted(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=HELLO,
        extra_body={"temperature": 0.5},
        extra_headers={"anthropic-version": "2023-06-01"},
    )

    assert message.stop_reason == "end_turn"


def test_messages_create__unknown_model__not_found(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client.messages.create(model="claude-nonexistent-1", max_tokens=100, messages=HELLO)

    assert caught.value.type == "not_found_error"


def test_messages_create__retired_model__not_found(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(model="claude-opus-4-1-20250805", max_tokens=100, messages=HELLO)


def test_messages_create__max_tokens_missing__bad_request(fake_anthropic: FakeAnthropic) -> None:
    response = httpx2.post(
        fake_anthropic.base_url + "/v1/messages",
        json={"model": MODEL, "messages": HELLO},
        headers={"x-api-key": DEFAULT_API_KEY, "anthropic-version": "2026-10-21"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["request_id"] == response.headers["request-id"]


def test_messages_create__version_header_missing__bad_request(fake_anthropic: FakeAnthropic) -> None:
    response = httpx2.post(
        fake_anthropic.base_url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 100, "messages": HELLO},
        headers={"x-api-key": DEFAULT_API_KEY},
    )

    assert response.status_code == 400


def test_messages_create__wrong_api_key__authentication_error(fake_anthropic: FakeAnthropic) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=fake_anthropic.base_url, max_retries=0)

    with client, pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)


def test_messages_create__429_then_success__sdk_retries_after_retry_after(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.fail_next(429, retry_after=0.2)
    client = anthropic.Anthropic(api_key=DEFAULT_API_KEY, base_url=fake_anthropic.base_url, max_retries=2)

    started = time.monotonic()
    with client:
        message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert time.monotonic() - started >= 0.2
    assert message.stop_reason == "end_turn"
    assert [r.headers["x-stainless-retry-count"] for r in fake_anthropic.requests] == ["0", "1"]


def test_messages_create__529__overloaded_error(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(529)

    with pytest.raises(anthropic.OverloadedError) as caught:
        anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert caught.value.type == "overloaded_error"
    assert caught.value.request_id is not None


def test_messages_create__latency__delays_reply(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.latency = 0.1

    started = time.monotonic()
    anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert time.monotonic() - started >= 0.1


def test_request_log__sdk_request__records_path_headers_and_body(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    [request] = fake_anthropic.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert request.body == {"model": MODEL, "max_tokens": 100, "messages": HELLO}


def test_beta_messages_create__mcp_servers_with_beta__accepted(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    anthropic_client.beta.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=HELLO,
        mcp_servers=[{"type": "url", "url": "https://mcp.example.com/sse", "name": "docs"}],
        betas=["mcp-client-2025-11-20"],
    )

    [request] = fake_anthropic.requests
    assert request.headers["anthropic-beta"] == "mcp-client-2025-11-20"
    assert request.body["mcp_servers"][0]["name"] == "docs"


def test_messages_create__mcp_servers_without_beta__bad_request(
    anthropic_client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(
            model=MODEL, max_tokens=100, messages=HELLO, extra_body={"mcp_servers": []}
        )

    assert caught.value.api_message == "mcp_servers: Extra inputs are not permitted"


def test_models_list__default__active_and_deprecated_only(anthropic_client: anthropic.Anthropic) -> None:
    lifecycles = {model.lifecycle for model in anthropic_client.models.list()}

    assert lifecycles == {"active", "deprecated"}


def test_models_list__retired_requested__only_retired(anthropic_client: anthropic.Anthropic) -> None:
    ids = [model.id for model in anthropic_client.models.list(lifecycle=["retired"])]

    assert ids == ["claude-opus-4-1-20250805"]


def test_models_list__limit_two__auto_pagination_follows_cursor(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    ids = [model.id for model in anthropic_client.models.list(limit=2)]

    assert len(ids) == 6
    assert len(fake_anthropic.requests) == 3
    assert fake_anthropic.requests[1].query["after_id"] == [ids[1]]


def test_models_list__before_id__previous_page(anthropic_client: anthropic.Anthropic) -> None:
    page = anthropic_client.models.list(limit=2, before_id="claude-opus-5")

    assert [model.id for model in page.data] == ["claude-sonnet-5-5", "claude-haiku-5-5"]
    assert page.has_more is True
    assert page.first_id == "claude-sonnet-5-5"


def test_models_retrieve__retired_model__still_described(anthropic_client: anthropic.Anthropic) -> None:
    model = anthropic_client.models.retrieve("claude-opus-4-1-20250805")

    assert model.lifecycle == "retired"
    assert model.retires_at == datetime(2026, 8, 5, tzinfo=UTC)


def test_usage_report__ten_days_limit_four__three_pages_via_next_page(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.usage_buckets = daily_usage_buckets(10)
    pages = [admin_get(fake_anthropic, "/v1/organizations/usage_report/messages", limit=4).json()]
    while pages[-1]["has_more"]:
        page = pages[-1]["next_page"]
        pages.append(
            admin_get(fake_anthropic, "/v1/organizations/usage_report/messages", limit=4, page=page).json()
        )

    assert [len(page["data"]) for page in pages] == [4, 4, 2]
    assert pages[-1]["next_page"] is None
    assert [r["output_tokens"] for page in pages for b in page["data"] for r in b["results"]] == list(
        range(10)
    )


def test_usage_report__ending_at__excludes_later_buckets(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.usage_buckets = daily_usage_buckets(10)

    body = admin_get(
        fake_anthropic, "/v1/organizations/usage_report/messages", ending_at="2026-11-03T00:00:00Z"
    ).json()

    assert [bucket["starting_at"] for bucket in body["data"]] == [
        "2026-11-01T00:00:00Z",
        "2026-11-02T00:00:00Z",
    ]


def test_usage_report__without_group_by__sums_and_nulls_dimensions(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.usage_buckets = [
        report_bucket(
            DAY_ONE,
            [
                usage_result(model=MODEL, output_tokens=5),
                usage_result(model="claude-opus-5-5", output_tokens=7),
            ],
        )
    ]

    body = admin_get(fake_anthropic, "/v1/organizations/usage_report/messages").json()

    [result] = body["data"][0]["results"]
    assert result["output_tokens"] == 12
    assert result["model"] is None


def test_usage_report__group_by_model__one_row_per_model(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.usage_buckets = [
        report_bucket(
            DAY_ONE,
            [
                usage_result(model=MODEL, workspace_id="wrkspc_a", output_tokens=5),
                usage_result(model=MODEL, workspace_id="wrkspc_b", output_tokens=7),
                usage_result(model="claude-opus-5-5", output_tokens=1),
            ],
        )
    ]

    body = admin_get(
        fake_anthropic, "/v1/organizations/usage_report/messages", **{"group_by[]": "model"}
    ).json()

    rows = {row["model"]: row for row in body["data"][0]["results"]}
    assert rows[MODEL]["output_tokens"] == 12
    assert rows[MODEL]["workspace_id"] is None
    assert rows["claude-opus-5-5"]["output_tokens"] == 1


def test_cost_report__group_by_description__amounts_as_decimal_strings(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.cost_buckets = [
        report_bucket(
            DAY_ONE,
            [
                cost_result("100.25", model=MODEL, token_type="output_tokens", workspace_id="wrkspc_a"),
                cost_result("0.50", model=MODEL, token_type="output_tokens", workspace_id="wrkspc_b"),
            ],
        )
    ]

    body = admin_get(fake_anthropic, "/v1/organizations/cost_report", **{"group_by[]": "description"}).json()

    [row] = body["data"][0]["results"]
    assert row["amount"] == "100.75"
    assert row["currency"] == "USD"
    assert row["model"] == MODEL
    assert row["workspace_id"] is None


def test_cost_report__hourly_width__bad_request(fake_anthropic: FakeAnthropic) -> None:
    response = admin_get(fake_anthropic, "/v1/organizations/cost_report", bucket_width="1h")

    assert response.status_code == 400


def test_usage_report__wrong_admin_key__authentication_error(fake_anthropic: FakeAnthropic) -> None:
    response = admin_get(
        fake_anthropic, "/v1/organizations/usage_report/messages", key="sk-ant-admin01-wrong"
    )

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_usage_report__regular_api_key__authentication_error(fake_anthropic: FakeAnthropic) -> None:
    response = admin_get(fake_anthropic, "/v1/organizations/usage_report/messages", key=DEFAULT_API_KEY)

    assert response.status_code == 401


def test_usage_report__scripted_429__retry_after_header(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_next(429, retry_after=3, path="/v1/organizations/")

    response = admin_get(fake_anthropic, "/v1/organizations/usage_report/messages")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"
