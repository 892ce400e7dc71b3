"""The LLM judge scorer against the fake Anthropic server, through the real SDK."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from demo.fake_anthropic import FakeAnthropic
from evals.scorers import Answer, Case, Context, Judge, run_scorer, validate_specs
from flags.forms import starter_content
from telemetry.pricing import ModelPricing, Price, PriceTable

PRICES = PriceTable(
    [
        ModelPricing(
            "claude-haiku-5-5",
            (Price("input", Decimal("1"), date(2023, 1, 1)), Price("output", Decimal("5"), date(2023, 1, 1))),
        )
    ]
)
CASE = Case(
    input={"messages": [{"role": "user", "content": "Where is my parcel?"}]}, reference={"text": "In Lyon"}
)


def _judge(client: anthropic.Anthropic, content: dict[str, Any] | None = None) -> Context:
    judge = Judge(
        content=content or starter_content("judge"),
        client=client,
        prices=PRICES,
        today=date(2026, 12, 5),
        version_id=42,
    )
    return Context(judges={"tone": judge})


def _spec(**fields: Any) -> Any:
    specs, errors = validate_specs([{"name": "llm_judge", "params": {"judge": "tone"}, **fields}])
    assert errors == []
    return specs[0]


def test_llm_judge__pass_verdict__passes_with_reason_and_cost(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.forced_tool_input = lambda name, body: {
        "passed": True,
        "explanation": "Correct and polite.",
    }
    result = run_scorer(_spec(), Answer.from_text("It is in Lyon."), CASE, _judge(anthropic_client))
    assert (result.score, result.passed, result.error) == (1.0, True, "")
    assert result.explanation == "Judge 'tone': pass. Correct and polite."
    usage = result.usage or {}
    assert result.cost_micro_usd == usage["input_tokens"] * 1 + usage["output_tokens"] * 5
    assert result.judge_version_id == 42


def test_llm_judge__request__rendered_from_the_judge_config_with_the_forced_tool(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.forced_tool_input = lambda name, body: {"passed": False, "explanation": "x"}
    run_scorer(_spec(), Answer.from_text("It is in Lyon."), CASE, _judge(anthropic_client))
    body = fake_anthropic.requests[-1].body
    assert body["tool_choice"] == {"type": "tool", "name": "record_verdict"}
    assert body["system"] == starter_content("judge")["system"]
    prompt = body["messages"][0]["content"]
    assert "user: Where is my parcel?" in prompt
    assert "<answer>\nIt is in Lyon.\n</answer>" in prompt


def test_llm_judge__fail_verdict__fails(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.forced_tool_input = lambda name, body: {"passed": False, "explanation": "Rude."}
    result = run_scorer(_spec(), Answer.from_text("Go away."), CASE, _judge(anthropic_client))
    assert (result.score, result.passed, result.explanation) == (0.0, False, "Judge 'tone': fail. Rude.")


@pytest.mark.parametrize(("verdict", "expected"), [(1, 0.0), (3, 0.5), (4, 0.75), (5, 1.0)])
def test_llm_judge__one_to_five_scale__mapped_onto_zero_to_one(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic, verdict: int, expected: float
) -> None:
    content = copy.deepcopy(starter_content("judge"))
    content["tools"][0]["input_schema"] = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["score"],
    }
    fake_anthropic.forced_tool_input = lambda name, body: {"score": verdict}
    result = run_scorer(
        _spec(threshold=0.75), Answer.from_text("ok"), CASE, _judge(anthropic_client, content)
    )
    assert (result.score, result.passed) == (expected, expected >= 0.75)


def test_llm_judge__score_out_of_scale__errors_and_still_reports_cost(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.forced_tool_input = lambda name, body: {"passed": "yes"}
    result = run_scorer(_spec(), Answer.from_text("ok"), CASE, _judge(anthropic_client))
    assert (result.passed, result.error) == (None, "The judge's verdict 'yes' is not true or false.")
    assert result.cost_micro_usd > 0


def test_llm_judge__overloaded_api__errors_not_fails(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.fail_next(529, error_type="overloaded_error", message="Overloaded")
    result = run_scorer(_spec(), Answer.from_text("ok"), CASE, _judge(anthropic_client))
    assert (result.passed, result.score) == (None, None)
    assert result.error.startswith("The judge's API call failed with HTTP 529")


def test_llm_judge__judge_answers_in_text__errors(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    result = run_scorer(_spec(), Answer.from_text("ok"), CASE, _judge(anthropic_client))
    assert result.error == "The judge 'tone' did not record a verdict with its tool."


def test_llm_judge__config_without_forced_tool__errors_before_any_call(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    content = copy.deepcopy(starter_content("judge"))
    del content["tool_choice"]
    result = run_scorer(_spec(), Answer.from_text("ok"), CASE, _judge(anthropic_client, content))
    assert result.error.startswith("The judge 'tone' is not a valid judge: tool_choice")
    assert fake_anthropic.requests == []


def test_llm_judge__unknown_judge__errors(anthropic_client: anthropic.Anthropic) -> None:
    result = run_scorer(_spec(), Answer.from_text("ok"), CASE, Context())
    assert result.error == "The judge 'tone' has no version to run (is it published?)."


def test_fake_server__forced_tool_script__returns_tool_use(
    fake_anthropic: FakeAnthropic, anthropic_client: anthropic.Anthropic
) -> None:
    fake_anthropic.forced_tool_input = lambda name, body: {"name_seen": name}
    message = anthropic_client.messages.create(
        model="claude-haiku-5-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"name": "t", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "t"},
    )
    assert (message.stop_reason, json.dumps(message.content[0].model_dump()["input"])) == (
        "tool_use",
        '{"name_seen": "t"}',
    )
