import copy
import inspect
import json
from typing import Any

import anthropic
import httpx2
import pytest

from flagstaff.render import (
    CONTEXT_MANAGEMENT_BETA,
    MCP_CLIENT_BETA,
    RenderError,
    render_request,
    render_subagent,
)

RESOLVED_VALUE = "resolved-from-store"
ENVIRONMENT_VALUE = "resolved-from-environment"
MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]


def make_content(**overrides: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 1024}
    content.update(overrides)
    return content


def make_full_content() -> dict[str, Any]:
    return make_content(
        system=[
            {
                "type": "text",
                "text": "You are a support agent.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        cache_control={"type": "ephemeral", "ttl": "1h"},
        tools=[
            {
                "name": "lookup_order",
                "description": "Find an order",
                "input_schema": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                },
            },
            {"type": "web_search_20260318", "name": "web_search"},
            {"type": "mcp_toolset", "mcp_server_name": "crm"},
        ],
        tool_choice={"type": "auto"},
        mcp_servers=[
            {
                "type": "url",
                "name": "crm",
                "url": "https://crm.example.com/mcp",
                "authorization_secret": "CRM_TOKEN",
            }
        ],
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        service_tier="auto",
        stop_sequences=["###"],
        betas=["fast-mode-2026-02-01"],
        max_iterations=20,
        subagents=[{"name": "researcher", "config": make_content()}],
    )


def fake_secrets(name: str) -> str:
    return {"CRM_TOKEN": RESOLVED_VALUE}[name]


def test_render_request__plain_content__copies_api_fields():
    content = make_content(
        system="Be brief.",
        tools=[{"name": "t", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any"},
        thinking={"type": "disabled"},
        output_config={"effort": "low"},
        service_tier="standard_only",
        stop_sequences=["END"],
        cache_control={"type": "ephemeral"},
    )

    rendered = render_request(content)

    assert rendered.kwargs == {
        **content,
        "extra_headers": {"anthropic-version": "2026-10-21"},
    }


def test_render_request__plain_content__is_not_beta():
    assert render_request(make_content()).beta is False


def test_render_request__control_plane_fields__are_not_rendered():
    content = make_content(
        anthropic_version="2026-10-21",
        max_iterations=5,
        subagents=[{"name": "helper", "config": make_content()}],
    )

    kwargs = render_request(content).kwargs

    assert not {"anthropic_version", "max_iterations", "subagents"} & kwargs.keys()


def test_render_request__fields_outside_the_contract__are_ignored():
    kwargs = render_request(make_content(metadata={"user_id": "u1"}, speed="fast")).kwargs

    assert not {"metadata", "speed"} & kwargs.keys()


def test_render_request__messages_given__are_passed_through():
    assert render_request(make_content(), messages=MESSAGES).kwargs["messages"] == MESSAGES


def test_render_request__no_messages__has_no_messages_kwarg():
    assert "messages" not in render_request(make_content()).kwargs


def test_render_request__missing_model__raises_render_error():
    with pytest.raises(RenderError, match="model"):
        render_request({"max_tokens": 10})


def test_render_request__betas__rendered_as_beta_request():
    rendered = render_request(make_content(betas=["fast-mode-2026-02-01"]))

    assert rendered.beta is True
    assert rendered.kwargs["betas"] == ["fast-mode-2026-02-01"]


def test_render_request__mcp_servers__token_resolved_from_secret():
    content = make_content(
        mcp_servers=[
            {
                "type": "url",
                "name": "crm",
                "url": "https://crm.example.com/mcp",
                "authorization_secret": "CRM_TOKEN",
            }
        ]
    )

    kwargs = render_request(content, secrets=fake_secrets).kwargs

    assert kwargs["mcp_servers"] == [
        {
            "type": "url",
            "name": "crm",
            "url": "https://crm.example.com/mcp",
            "authorization_token": RESOLVED_VALUE,
        }
    ]


def test_render_request__mcp_server_without_secret__has_no_token():
    content = make_content(
        mcp_servers=[{"type": "url", "name": "docs", "url": "https://docs.example.com/mcp"}]
    )

    server = render_request(content).kwargs["mcp_servers"][0]

    assert "authorization_token" not in server


def test_render_request__mcp_servers__add_mcp_client_beta():
    content = make_content(
        betas=["fast-mode-2026-02-01"],
        mcp_servers=[{"type": "url", "name": "docs", "url": "https://docs.example.com/mcp"}],
    )

    rendered = render_request(content)

    assert rendered.beta is True
    assert rendered.kwargs["betas"] == ["fast-mode-2026-02-01", MCP_CLIENT_BETA]


def test_render_request__beta_already_listed__is_not_repeated():
    content = make_content(
        betas=[MCP_CLIENT_BETA],
        mcp_servers=[{"type": "url", "name": "docs", "url": "https://docs.example.com/mcp"}],
    )

    assert render_request(content).kwargs["betas"] == [MCP_CLIENT_BETA]


def test_render_request__default_secret_resolver__reads_environment(monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", ENVIRONMENT_VALUE)
    content = make_content(
        mcp_servers=[
            {
                "type": "url",
                "name": "crm",
                "url": "https://crm.example.com/mcp",
                "authorization_secret": "CRM_TOKEN",
            }
        ]
    )

    assert render_request(content).kwargs["mcp_servers"][0]["authorization_token"] == ENVIRONMENT_VALUE


def test_render_request__secret_missing__raises_render_error_naming_server(monkeypatch):
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    content = make_content(
        mcp_servers=[
            {
                "type": "url",
                "name": "crm",
                "url": "https://crm.example.com/mcp",
                "authorization_secret": "CRM_TOKEN",
            }
        ]
    )

    with pytest.raises(RenderError, match=r"MCP server 'crm'.*'CRM_TOKEN'"):
        render_request(content)


def test_render_request__secret_empty__raises_render_error():
    content = make_content(
        mcp_servers=[
            {
                "type": "url",
                "name": "crm",
                "url": "https://crm.example.com/mcp",
                "authorization_secret": "CRM_TOKEN",
            }
        ]
    )

    with pytest.raises(RenderError, match="crm"):
        render_request(content, secrets=lambda name: "")


def test_render_request__context_management__rendered_with_its_beta():
    edits = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}

    rendered = render_request(make_content(context_management=edits))

    assert rendered.beta is True
    assert rendered.kwargs["context_management"] == edits
    assert rendered.kwargs["betas"] == [CONTEXT_MANAGEMENT_BETA]


def test_render_request__legacy_version__pins_version_header():
    kwargs = render_request(make_content(anthropic_version="2023-06-01")).kwargs

    assert kwargs["extra_headers"] == {"anthropic-version": "2023-06-01"}


def test_render_request__sampling_params_on_legacy_version__go_to_extra_body():
    content = make_content(anthropic_version="2023-06-01", temperature=0.2, top_p=0.9, top_k=40)

    kwargs = render_request(content).kwargs

    assert kwargs["extra_body"] == {"temperature": 0.2, "top_p": 0.9, "top_k": 40}
    assert not {"temperature", "top_p", "top_k"} & kwargs.keys()


def test_render_request__sampling_params_on_current_version__raise_render_error():
    with pytest.raises(RenderError, match="temperature"):
        render_request(make_content(temperature=0.2))


def test_render_request__rendered_twice__gives_equal_output_and_leaves_input_unchanged():
    content = make_full_content()
    before = copy.deepcopy(content)

    first = render_request(content, messages=MESSAGES, secrets=fake_secrets)
    second = render_request(content, messages=MESSAGES, secrets=fake_secrets)

    assert first == second
    assert content == before


def test_render_request__output_mutated__input_unaffected():
    content = make_full_content()
    messages = copy.deepcopy(MESSAGES)

    kwargs = render_request(content, messages=messages, secrets=fake_secrets).kwargs
    kwargs["tools"][0]["name"] = "changed"
    kwargs["messages"][0]["content"] = "changed"

    assert content["tools"][0]["name"] == "lookup_order"
    assert messages == MESSAGES


def test_render_subagent__known_name__renders_nested_config():
    nested = make_content(model="claude-haiku-5-5", max_tokens=256, system="Research.")
    content = make_content(
        subagents=[{"name": "researcher", "description": "Looks things up", "config": nested}]
    )

    assert render_subagent(content, "researcher") == render_request(nested)


def test_render_subagent__unknown_name__raises_render_error():
    with pytest.raises(RenderError, match="'writer'"):
        render_subagent(make_content(), "writer")


def test_render_request__plain_kwargs__bind_to_sdk_messages_create():
    rendered = render_request(
        make_content(system="Be brief.", anthropic_version="2023-06-01", temperature=0.2),
        messages=MESSAGES,
    )
    create = anthropic.Anthropic(api_key="x").messages.create

    inspect.signature(create).bind(**rendered.kwargs)


def test_render_request__beta_kwargs__bind_to_sdk_beta_messages_create():
    rendered = render_request(make_full_content(), messages=MESSAGES, secrets=fake_secrets)
    create = anthropic.Anthropic(api_key="x").beta.messages.create

    inspect.signature(create).bind(**rendered.kwargs)


def test_render_request__sent_through_sdk__request_carries_headers_and_body():
    sent: list[httpx2.Request] = []

    def respond(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-5-5",
                "content": [],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        )

    client = anthropic.Anthropic(
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(respond)),
    )
    content = make_content(
        anthropic_version="2023-06-01",
        temperature=0.2,
        mcp_servers=[
            {
                "type": "url",
                "name": "crm",
                "url": "https://crm.example.com/mcp",
                "authorization_secret": "CRM_TOKEN",
            }
        ],
    )
    rendered = render_request(content, messages=MESSAGES, secrets=fake_secrets)

    client.beta.messages.create(**rendered.kwargs)

    body = json.loads(sent[0].content)
    assert sent[0].headers["anthropic-version"] == "2023-06-01"
    assert sent[0].headers["anthropic-beta"] == MCP_CLIENT_BETA
    assert body["temperature"] == 0.2
    assert body["mcp_servers"][0]["authorization_token"] == RESOLVED_VALUE
