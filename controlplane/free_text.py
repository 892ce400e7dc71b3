"""Free text the product stores (names, descriptions, reasons, messages, rule and segment values)
never holds an Anthropic API key: it would be shown on pages, exported with the audit log and,
for targeting values, sent to every service in snapshots."""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.errors import InvalidInput
from flagstaff.api_keys import api_key_paths
from flagstaff.nesting import render_path

API_KEY_MESSAGE = (
    "This looks like an Anthropic API key. Keys must never be stored here: keep the key in a secret "
    "store and write only its name."
)


def refuse_api_keys(fields: Mapping[str, object]) -> None:
    """Raise InvalidInput (code api_key_in_text) naming every field path that holds a key.

    `fields` maps a field's path to its value: text, or lists and objects of text.
    """
    errors = [
        {"path": render_path([name, *path]), "message": API_KEY_MESSAGE}
        for name, value in fields.items()
        for path in api_key_paths(value)
    ]
    if errors:
        raise InvalidInput(
            "A field looks like it holds an Anthropic API key; it was not saved.",
            code="api_key_in_text",
            errors=errors,
        )
