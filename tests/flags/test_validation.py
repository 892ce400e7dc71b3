from datetime import date

import pytest
from jsonschema import Draft202012Validator

from flags.validation import CONFIG_SCHEMA, Issue, validate_config
from tests.flags.config_factories import CATALOG, DROP, MAX_DEPTH, make, tool, validate

VALID = [
    pytest.param(make(), "chat", id="minimal"),
    pytest.param(make(max_iterations=1), "typing_assist", id="max-iterations-optional-off-agent"),
    pytest.param(make(max_iterations=1000), "agent", id="agent-with-max-iterations"),
    pytest.param(make(), "batch", id="batch-surface"),
    pytest.param(make(model="claude-opus-5-5"), "chat", id="model-known"),
    pytest.param(make(anthropic_version="2026-10-21"), "chat", id="version-explicit-default"),
    pytest.param(
        make(model="test-sampling", anthropic_version="2023-06-01", temperature=0.2, top_k=40),
        "chat",
        id="sampling-under-2023-06-01-on-accepting-model",
    ),
    pytest.param(
        make(model="claude-haiku-4-5-20251001", anthropic_version="2023-06-01", temperature=0.7),
        "chat",
        id="haiku-4-5-one-sampling-param",
    ),
    pytest.param(
        make(
            model="test-sampling",
            anthropic_version="2023-06-01",
            top_p=0.95,
            thinking={"type": "adaptive"},
        ),
        "chat",
        id="top-p-in-range-with-thinking",
    ),
    pytest.param(make(max_tokens=128_000), "chat", id="max-tokens-at-limit"),
    pytest.param(make(output_config={"effort": "xhigh"}), "chat", id="effort-supported"),
    pytest.param(
        make(thinking={"type": "adaptive", "display": "summarized"}), "chat", id="thinking-supported"
    ),
    pytest.param(
        make(
            model="claude-haiku-4-5-20251001",
            max_tokens=4096,
            thinking={"type": "enabled", "budget_tokens": 1024},
        ),
        "chat",
        id="budget-at-minimum-below-max-tokens",
    ),
    pytest.param(
        make(model="claude-opus-5", thinking={"type": "disabled"}, output_config={"effort": "high"}),
        "chat",
        id="opus-5-thinking-off-at-high",
    ),
    pytest.param(
        make(model="claude-sonnet-5-5", thinking={"type": "between_tools"}, tool_choice={"type": "auto"}),
        "chat",
        id="sonnet-5-5-between-tools-auto-choice",
    ),
]

ERRORS = [
    # Shape (JSON Schema)
    pytest.param("just text", "chat", "", "Expected an object, got text.", id="root-not-object"),
    pytest.param(make(model=DROP), "chat", "model", "'model' is required.", id="model-missing"),
    pytest.param(
        make(temprature=0.5), "chat", "temprature", "Unknown field 'temprature'.", id="unknown-field"
    ),
    pytest.param(
        make(max_tokens="1024"), "chat", "max_tokens", "Expected a whole number", id="max-tokens-type"
    ),
    pytest.param(make(max_tokens=0), "chat", "max_tokens", "Must be at least 1.", id="max-tokens-zero"),
    pytest.param(
        make(anthropic_version="2024-01-01"),
        "chat",
        "anthropic_version",
        "use one of: 2026-10-21, 2023-06-01",
        id="version-unknown",
    ),
    pytest.param(
        make(system=[{"type": "text"}]),
        "chat",
        "system[0].text",
        "'text' is required.",
        id="system-block-no-text",
    ),
    # Model and lifecycle
    pytest.param(
        make(model="claude-sonet-5-5"),
        "chat",
        "model",
        "Model 'claude-sonet-5-5' is not in the catalog. Did you mean 'claude-sonnet-5-5'?",
        id="model-typo",
    ),
    pytest.param(
        make(model="gpt-4o"), "chat", "model", "Model 'gpt-4o' is not in the catalog.", id="model-unknown"
    ),
    pytest.param(
        make(model="claude-opus-4-1-20250805", max_tokens=500_000),
        "chat",
        "model",
        "was retired on 2026-08-05; requests to it fail. Switch to 'claude-opus-4-8'.",
        id="model-retired",
    ),
    pytest.param(
        make(model="claude-sonnet-4-0"), "chat", "model", "retired on 2026-06-15", id="model-retired-alias"
    ),
    # API version and sampling parameters
    pytest.param(
        make(temperature=0.5),
        "chat",
        "temperature",
        "'temperature' was removed in API version 2026-10-21; the API rejects it at any value.",
        id="temperature-under-2026-10-21",
    ),
    pytest.param(
        make(anthropic_version="2026-10-21", top_k=5),
        "chat",
        "top_k",
        "'top_k' was removed in API version 2026-10-21",
        id="top-k-under-2026-10-21",
    ),
    pytest.param(
        make(anthropic_version="2023-06-01", top_p=0.9),
        "chat",
        "top_p",
        "Claude Haiku 5.5 rejects 'top_p' (the API returns 400 for sampling parameters on this model)",
        id="sampling-on-rejecting-model",
    ),
    pytest.param(
        make(model="claude-haiku-4-5", anthropic_version="2023-06-01", temperature=0.5, top_p=0.9),
        "chat",
        "top_p",
        "Claude Haiku 4.5 rejects 'temperature' and 'top_p' together",
        id="haiku-4-5-temperature-and-top-p",
    ),
    pytest.param(
        make(model="test-sampling", anthropic_version="2023-06-01", top_k=10, thinking={"type": "adaptive"}),
        "chat",
        "top_k",
        "'top_k' cannot be combined with thinking",
        id="top-k-with-thinking",
    ),
    pytest.param(
        make(model="test-sampling", anthropic_version="2023-06-01", top_p=0.5, thinking={"type": "adaptive"}),
        "chat",
        "top_p",
        "With thinking on, 'top_p' must be between 0.95 and 1.",
        id="top-p-low-with-thinking",
    ),
    # Model limits and capabilities
    pytest.param(
        make(max_tokens=200_000),
        "chat",
        "max_tokens",
        "max_tokens is 200,000, above the output limit of Claude Haiku 5.5 (128,000).",
        id="max-tokens-over-limit",
    ),
    pytest.param(
        make(model="claude-opus-4-6", output_config={"effort": "xhigh"}),
        "chat",
        "output_config.effort",
        "Claude Opus 4.6 does not support effort 'xhigh'; use one of: low, medium, high, max.",
        id="effort-unsupported",
    ),
    pytest.param(
        make(model="claude-haiku-4-5", output_config={"effort": "low"}),
        "chat",
        "output_config.effort",
        "Claude Haiku 4.5 does not support effort 'low'; remove it.",
        id="effort-on-model-without-effort",
    ),
    pytest.param(
        make(output_config={"effort": "ultra"}),
        "chat",
        "output_config.effort",
        "'ultra' is not allowed; use one of: low, medium, high, xhigh, max.",
        id="effort-unknown",
    ),
    pytest.param(
        make(model="claude-opus-4-7", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048}),
        "chat",
        "thinking.type",
        "Claude Opus 4.7 does not accept thinking type 'enabled'; use one of: adaptive, disabled.",
        id="thinking-enabled-unsupported",
    ),
    pytest.param(
        make(model="claude-opus-5-5", thinking={"type": "disabled"}),
        "chat",
        "thinking.type",
        "Claude Opus 5.5 does not accept thinking type 'disabled'",
        id="thinking-always-on",
    ),
    pytest.param(
        make(model="claude-haiku-4-5", thinking={"type": "enabled", "budget_tokens": 512}),
        "chat",
        "thinking.budget_tokens",
        "Must be at least 1024.",
        id="budget-below-1024",
    ),
    pytest.param(
        make(model="claude-haiku-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 2048}),
        "chat",
        "thinking.budget_tokens",
        "budget_tokens (2,048) must be less than max_tokens (2,048).",
        id="budget-not-below-max-tokens",
    ),
    pytest.param(
        make(model="claude-haiku-4-5", thinking={"type": "enabled"}),
        "chat",
        "thinking.budget_tokens",
        "'budget_tokens' is required.",
        id="budget-missing",
    ),
    pytest.param(
        make(thinking={"type": "adaptive", "budget_tokens": 2048}),
        "chat",
        "thinking.budget_tokens",
        "budget_tokens is only allowed with thinking type 'enabled'.",
        id="budget-with-adaptive",
    ),
    pytest.param(
        make(model="claude-opus-5", thinking={"type": "disabled"}, output_config={"effort": "max"}),
        "chat",
        "output_config.effort",
        "Claude Opus 5 accepts effort 'max' only with thinking on; with thinking 'disabled' use 'low', "
        "'medium' or 'high', or turn thinking on.",
        id="opus-5-thinking-off-at-max",
    ),
    pytest.param(
        make(model="claude-sonnet-5-5", tools=[tool("search")], tool_choice={"type": "any"}),
        "chat",
        "tool_choice.type",
        "Claude Sonnet 5.5 does not support forced tool use (tool_choice 'any'); use 'auto'.",
        id="forced-tool-use-unsupported",
    ),
    pytest.param(
        make(thinking={"type": "disabled", "display": "omitted"}),
        "chat",
        "thinking.display",
        "display is only allowed with thinking type 'adaptive'.",
        id="display-without-adaptive",
    ),
    # Surface
    pytest.param(
        make(),
        "agent",
        "max_iterations",
        "Agent flags need max_iterations",
        id="agent-without-max-iterations",
    ),
    pytest.param(
        make(max_iterations=0), "chat", "max_iterations", "Must be at least 1.", id="max-iterations-zero"
    ),
    pytest.param(
        make(max_iterations=1001),
        "agent",
        "max_iterations",
        "Must be at most 1000.",
        id="max-iterations-too-high",
    ),
]


WARNINGS = [
    pytest.param(
        make(model="test-retires-soon"),
        "model",
        "Model 'test-retires-soon' is deprecated and retires on 2026-12-05 (10 days left). "
        "Switch to 'claude-sonnet-5-5'.",
        id="deprecated",
    ),
    pytest.param(
        make(model="claude-sonnet-4-5-20250929"),
        "model",
        "is deprecated and retires on 2026-11-30 (5 days left). Switch to 'claude-sonnet-5-5'.",
        id="deprecated-seed-model",
    ),
    pytest.param(
        make(model="test-retires-today"), "model", "retires today (2026-11-25)", id="deprecated-due-today"
    ),
    pytest.param(
        make(model="test-overdue"),
        "model",
        "was due to retire on 2026-11-20 (5 days ago); it can stop working at any time",
        id="deprecated-overdue",
    ),
    pytest.param(
        make(model="test-no-date"),
        "model",
        "no retirement date is announced yet",
        id="deprecated-without-date",
    ),
    pytest.param(make(cache_control=DROP), "", "No prompt caching", id="no-cache-breakpoint"),
    pytest.param(
        make(subagents=[{"name": "helper", "config": make(cache_control=DROP)}]),
        "subagents[0].config",
        "No prompt caching",
        id="no-cache-breakpoint-in-subagent",
    ),
]


@pytest.mark.parametrize(("content", "surface"), VALID)
def test_validate_config__valid_config__has_no_issues(content, surface):
    result = validate(content, surface)

    assert result.errors == []
    assert result.warnings == []
    assert result.ok


@pytest.mark.parametrize(("content", "surface", "path", "message"), ERRORS)
def test_validate_config__invalid_config__reports_one_error_at_path(content, surface, path, message):
    result = validate(content, surface)

    assert [issue.path for issue in result.errors] == [path]
    assert message in result.errors[0].message
    assert not result.ok


@pytest.mark.parametrize(("content", "path", "message"), WARNINGS)
def test_validate_config__questionable_config__warns_at_path(content, path, message):
    result = validate(content)

    assert result.errors == []
    assert [issue.path for issue in result.warnings] == [path]
    assert message in result.warnings[0].message


def test_validate_config__model_typo__suggests_only_close_ids():
    result = validate(make(model="claude-opus-55"))

    assert result.errors[0].message == (
        "Model 'claude-opus-55' is not in the catalog. Did you mean 'claude-opus-5-5' or 'claude-opus-5'?"
    )


def test_validate_config__schema_and_rule_errors__schema_errors_first():
    result = validate(make(max_tokens=200_000, tools=[tool("a", colour="red")]))

    assert [issue.code for issue in result.errors] == ["unknown_field", "max_tokens_over_limit"]


def test_validate_config__malformed_parts__rules_still_run_on_the_rest():
    result = validate(make(tools=["search", tool("a"), tool("a")], system=5))

    assert [issue.path for issue in result.errors] == ["system", "tools[0]", "tools[2].name"]


def test_validate_config__retired_model__skips_capability_checks():
    result = validate(make(model="claude-3-opus-20240229", output_config={"effort": "max"}, max_tokens=10**7))

    assert [issue.code for issue in result.errors] == ["model_retired"]


def test_validate_config__later_today__fewer_days_left():
    result = validate_config(
        make(model="test-retires-soon"),
        catalog=CATALOG,
        surface="chat",
        today=date(2026, 12, 4),
        max_depth=MAX_DEPTH,
    )

    assert "(1 day left)" in result.warnings[0].message


def test_validate_config__unknown_surface__raises():
    with pytest.raises(ValueError, match="Unknown surface 'voice'"):
        validate(make(), "voice")


def test_issue__as_dict__has_path_message_and_code():
    issue = Issue(path="tools[2].input_schema.type", message="Must be 'object'.", code="invalid_value")

    assert issue.as_dict() == {
        "path": "tools[2].input_schema.type",
        "message": "Must be 'object'.",
        "code": "invalid_value",
    }


def test_config_schema__checked_against_metaschema__is_valid_draft_2020_12():
    Draft202012Validator.check_schema(CONFIG_SCHEMA)

    assert CONFIG_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_config_schema__top_level__rejects_unknown_fields_and_describes_every_field():
    properties = CONFIG_SCHEMA["properties"]

    assert CONFIG_SCHEMA["additionalProperties"] is False
    assert [name for name, field in properties.items() if "description" not in field] == []


def test_config_schema__subagent_config__refers_back_to_the_root():
    assert CONFIG_SCHEMA["$defs"]["subagent"]["properties"]["config"]["$ref"] == "#"
