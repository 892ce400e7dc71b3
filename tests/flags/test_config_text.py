import json

import pytest

from flags.config_text import LocatedIssue, locate_issues
from flags.validation import Issue
from flags.validation.issues import format_path, parse_path

PRETTY = json.dumps(
    {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "tools": [
            {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "strin"}}}},
        ],
        "subagents": [{"name": "a b", "config": {"model": "x"}}],
    },
    indent=2,
)


def line_of(text: str, path: str) -> int | None:
    return locate_issues(text, [Issue(path, "message", "code")])[0].line


def numbered(text: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle`."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    "segments",
    [
        ["tools", 2, "input_schema", "type"],
        ["configs", "my tool", "enabled"],
        [0, "name"],
        ["a", 'quote " and \\ backslash'],
        [],
    ],
)
def test_parse_path__any_formatted_path__gives_back_its_segments(segments):
    assert parse_path(format_path(segments)) == segments


def test_parse_path__not_a_path__raises():
    with pytest.raises(ValueError, match="Not a validation path"):
        parse_path("tools[x]")


def test_locate_issues__pretty_json__each_path_at_its_key_line():
    assert line_of(PRETTY, "max_tokens") == numbered(PRETTY, '"max_tokens"')
    assert line_of(PRETTY, "tools[0].input_schema.properties.q.type") == numbered(PRETTY, '"strin"')
    assert line_of(PRETTY, "subagents[0].config.model") == numbered(PRETTY, '"x"')


def test_locate_issues__list_item__at_the_line_it_starts_on():
    assert line_of(PRETTY, "tools[0]") == numbered(PRETTY, '"tools"') + 1


def test_locate_issues__missing_field__at_the_nearest_part_that_exists():
    assert line_of(PRETTY, "tools[0].description") == numbered(PRETTY, '"tools"') + 1
    assert line_of(PRETTY, "thinking.type") == 1


def test_locate_issues__top_level_issue__has_no_line():
    assert line_of(PRETTY, "") is None


def test_locate_issues__compact_json_with_tabs_and_escapes__lines_counted():
    text = (
        '{"system": "a\\nb \\"quoted\\"",\n\t"max_tokens":\t1e3,\n\t"tools": [\n\t\t{}, {"name": "x"}\n\t]}'
    )

    assert line_of(text, "max_tokens") == 2
    assert line_of(text, "tools[1].name") == 4


def test_locate_issues__repeated_key__the_last_one_as_json_loads_keeps():
    text = '{\n  "max_tokens": 1,\n  "model": "m",\n  "max_tokens": 2\n}'

    assert line_of(text, "max_tokens") == 4


def test_locate_issues__yaml__each_path_at_its_line():
    text = "model: m\nmax_tokens: 0\ntools:\n  - name: lookup\n    input_schema:\n      type: array\n"

    assert line_of(text, "max_tokens") == 2
    assert line_of(text, "tools[0].input_schema.type") == 6
    assert line_of(text, "tools[0].description") == 4


def test_locate_issues__issue_fields__kept_beside_the_line():
    located = locate_issues(PRETTY, [Issue("model", "Unknown model.", "unknown_model")])

    assert located == [LocatedIssue("model", "Unknown model.", "unknown_model", 2)]
