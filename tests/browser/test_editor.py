"""The version editor in a real browser: a change that is not a keystroke (a mouse paste) is
checked too, and the panel never says "Valid" over text it has not checked; a product owner builds
a version in the structured form (model, multi-line prompt, a tool), sees errors beside fields and
at lines of the text, and saves; without JavaScript the text alone still works."""

import json

import pytest
from playwright.sync_api import Locator, Page, expect

from controlplane.models import Role
from flags.models import ConfigVersion
from tests.browser.support import PASSWORD, log_in, save_page, violations_on
from tests.factories import VALID_CONTENT, make_flag, make_user, make_version
from tests.flags.config_factories import server, toolset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What a paste does to the text without a key being pressed: the value changes, then "input".
PASTE = """(text) => {
  const editor = document.querySelector("textarea[name=content]");
  editor.value = text;
  editor.dispatchEvent(new Event("input", {bubbles: true}));
}"""
PROMPT = "You help customers of Acme.\n\nNever promise refunds over $250."


def test_editor__broken_config_pasted_with_the_mouse__checked_and_never_valid(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    make_version(flag=make_flag(key="support-chat"))
    log_in(page, f"{live_server.url}/flags/support-chat/versions/new/?from=1", "owner@example.com")
    panel = page.locator("#validation")
    expect(panel.locator(".check-title")).to_have_text("Valid")

    page.route("**/versions/new/", lambda route: page.wait_for_timeout(600) or route.continue_())
    page.evaluate(PASTE, '{"model": "claude-sonnet-5-5", "max_tokens": ')

    expect(panel).to_have_class("card check-panel check-stale")
    expect(panel.locator(".check-ok")).to_be_hidden()
    expect(panel.locator(".check-title")).to_have_text("Cannot read the config")
    expect(panel).not_to_have_class("card check-panel check-stale")

    page.evaluate(PASTE, json.dumps({**VALID_CONTENT, "max_tokens": 0}))
    expect(panel.locator(".check-title")).to_have_text("1 error")
    expect(panel).to_contain_text("max_tokens")


def field(page: Page, path: str) -> Locator:
    """The structured form's field for a config path."""
    return page.locator(f'#config-form [data-path="{path}"]')


def test_structured_editor__product_owner_builds_a_version__errors_beside_fields_and_saved(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    flag = make_flag(key="support-chat")
    make_version(flag=flag)
    violations = violations_on(page)
    log_in(page, f"{live_server.url}/flags/support-chat/versions/new/?from=1", "owner@example.com")
    panel = page.locator("#validation")
    expect(page.get_by_role("tab", name="Form")).to_have_attribute("aria-selected", "true")
    expect(panel.locator(".check-title")).to_have_text("Valid")

    # The model picker shows the catalog's facts; max_tokens over the model's limit is an error beside it.
    page.get_by_label("Model", exact=True).select_option("claude-opus-5-5")
    expect(page.locator(".model-facts")).to_contain_text("Output up to 128,000 tokens")
    expect(page.locator(".model-facts")).to_contain_text("per million tokens")
    page.get_by_label("Max tokens").fill("200000")
    expect(field(page, "max_tokens").locator(".field-issue-error")).to_contain_text("above the output limit")
    # The field's max is a hint: "Check" still posts the config, and the server's answer says why.
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_label("Max tokens")).to_have_value("200000")
    expect(field(page, "max_tokens").locator(".field-issue-error")).to_contain_text("above the output limit")
    page.get_by_label("Max tokens").fill("4096")
    expect(field(page, "max_tokens").locator(".field-issue")).to_have_count(0)
    expect(panel.locator(".check-title")).to_have_text("Valid")

    # A multi-line system prompt with a cache breakpoint.
    page.get_by_role("button", name="Add a text block").click()
    block = field(page, "system[0]")
    block.locator("textarea").press_sequentially("You help customers of Acme.")
    block.locator("textarea").press("Enter")
    block.locator("textarea").press("Enter")
    block.locator("textarea").press_sequentially("Never promise refunds over $250.")
    block.get_by_label("Cache breakpoint after this block").check()

    # One tool, whose schema is first not JSON, then not a valid JSON Schema, then right.
    page.get_by_role("button", name="Add a tool").click()
    tool = field(page, "tools[0]")
    tool.get_by_label("Name").fill("lookup_order")
    tool.get_by_label("Description").fill("Find an order by its id.")
    schema = tool.get_by_label("Input schema (JSON Schema)")
    schema.fill('{"type": "object", "properties": {"order_id": {"type": "strin"}')
    expect(tool.locator(".json-problem")).to_contain_text("Not valid JSON")
    expect(panel.locator(".check-ok")).to_be_hidden()
    expect(page.get_by_role("button", name="Save version")).to_be_disabled()
    schema.fill('{"type": "object", "properties": {"order_id": {"type": "strin"}}}')
    schema_field = field(page, "tools[0].input_schema")
    expect(schema_field.locator(".field-issue-error")).to_contain_text("Not a valid JSON Schema")
    expect(panel.locator(".check-bad")).to_be_visible()
    save_page(page, "editor-form-error-1280")
    # The fix is pasted with the keyboard: a paste is checked like typing.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    fixed = '{"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}'
    page.evaluate("text => navigator.clipboard.writeText(text)", fixed)
    schema.press("Control+A")
    schema.press("Control+V")
    expect(schema).to_have_value(fixed)
    expect(schema_field.locator(".field-issue")).to_have_count(0)
    expect(panel.locator(".check-title")).to_have_text("Valid")

    # The text view holds the same config; an error there is marked at its line.
    page.get_by_role("tab", name="Text (JSON or YAML)").click()
    editor = page.locator("textarea[name=content]")
    text = editor.input_value()
    assert json.loads(text)["system"][0]["text"] == PROMPT
    broken = text.replace('"max_tokens": 4096', '"max_tokens": 0')
    editor.fill(broken)
    line = next(number for number, row in enumerate(broken.splitlines(), 1) if '"max_tokens"' in row)
    expect(page.locator(".code-gutter .gutter-error")).to_have_text(str(line))
    expect(panel.locator(f'li[data-line="{line}"]')).to_contain_text("max_tokens")
    save_page(page, "editor-text-error-1280")

    # Back in the form, the error is beside its field; fixed there, the text follows.
    page.get_by_role("tab", name="Form").click()
    expect(field(page, "max_tokens").locator(".field-issue-error")).to_contain_text("at least 1")
    page.get_by_label("Max tokens").fill("4096")
    expect(panel.locator(".check-title")).to_have_text("Valid")

    # Switching without an edit changes nothing.
    page.get_by_role("tab", name="Text (JSON or YAML)").click()
    before = editor.input_value()
    page.get_by_role("tab", name="Form").click()
    page.get_by_role("tab", name="Text (JSON or YAML)").click()
    assert editor.input_value() == before
    page.get_by_role("tab", name="Form").click()

    page.get_by_label("Message").fill("Opus with a billing prompt and an order tool")
    page.get_by_role("button", name="Save version").click()

    expect(page.locator(".messages")).to_contain_text("Saved support-chat v2.")
    expect(page.locator("#system-prompt pre")).to_have_text(PROMPT)
    content = ConfigVersion.objects.get(flag=flag, number=2).content
    assert content["model"] == "claude-opus-5-5"
    assert content["system"] == [{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}]
    assert content["tools"][0]["name"] == "lookup_order"
    assert violations == []


def test_structured_editor__at_390_px__fields_fit_and_errors_show_beside_them(live_server, page):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    content = {
        **VALID_CONTENT,
        "system": [{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "lookup_order", "input_schema": {"type": "object"}}],
        "mcp_servers": [server("docs", authorization_secret="DOCS_MCP_TOKEN")],
    }
    content["tools"].append(toolset("docs"))
    make_version(
        flag=make_flag(key="support-chat", surface="agent"), content={**content, "max_iterations": 10}
    )
    page.set_viewport_size({"width": 390, "height": 900})
    log_in(page, f"{live_server.url}/flags/support-chat/versions/new/?from=1", "owner@example.com")

    page.get_by_role("button", name="Add a subagent").click()
    subagent = field(page, "subagents[0]")
    subagent.get_by_label("Name").fill("researcher")
    expect(subagent.locator("summary")).to_have_text("Subagent 1: researcher")
    expect(field(page, "subagents[0].config.model").locator("select")).to_have_value("claude-sonnet-5-5")
    secret = field(page, "mcp_servers[0].authorization_secret").locator("input")
    expect(secret).to_have_attribute("list", "secret-names")
    expect(page.locator("#secret-names option[value=DOCS_MCP_TOKEN]")).to_have_count(1)
    secret.fill("docs token")
    expect(field(page, "mcp_servers[0].authorization_secret").locator(".field-issue-error")).to_contain_text(
        "Secret names start with a letter"
    )
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    save_page(page, "editor-form-390")
    page.get_by_role("tab", name="Text (JSON or YAML)").click()
    save_page(page, "editor-text-390")


def test_editor__without_javascript__the_text_alone_saves(live_server, browser):
    make_user(role=Role.EDITOR, username="owner@example.com", password=PASSWORD)
    flag = make_flag(key="support-chat")
    make_version(flag=flag)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, f"{live_server.url}/flags/support-chat/versions/new/?from=1", "owner@example.com")

    expect(page.locator("#config-form")).to_be_hidden()
    page.locator("textarea[name=content]").fill(json.dumps({**VALID_CONTENT, "system": PROMPT}))
    page.get_by_role("button", name="Save version").click()

    expect(page.locator("#system-prompt pre")).to_have_text(PROMPT)
    assert ConfigVersion.objects.get(flag=flag, number=2).content["system"] == PROMPT
    context.close()
