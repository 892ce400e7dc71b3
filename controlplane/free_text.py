"""Free text the product stores (names, descriptions, reasons, messages, rule and segment values):
bounded in length, and never holding an Anthropic API key, which would be shown on pages,
exported with the audit log and, for targeting values, sent to every service in snapshots."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import CharField, Model

from controlplane.errors import InvalidInput
from flagstaff.api_keys import api_key_paths
from flagstaff.nesting import render_path

API_KEY_MESSAGE = (
    "This looks like an Anthropic API key. Keys must never be stored here: keep the key in a secret "
    "store and write only its name."
)


def check_free_text(fields: Mapping[str, object], *, limits: Mapping[str, int] | None = None) -> None:
    """Refuse text longer than its limit (code too_long), then text holding an API key (code
    api_key_in_text), naming every offending path.

    `fields` maps a field's path to its value: text, or lists and objects of text; `limits`
    maps some of those paths to their most characters.
    """
    too_long = [
        {"path": name, "message": f"At most {limit:,} characters; this has {len(value):,}."}
        for name, limit in (limits or {}).items()
        if isinstance(value := fields.get(name), str) and len(value) > limit
    ]
    if too_long:
        raise InvalidInput("Some text is longer than allowed.", code="too_long", errors=too_long)
    keys = [
        {"path": render_path([name, *path]), "message": API_KEY_MESSAGE}
        for name, value in fields.items()
        for path in api_key_paths(value)
    ]
    if keys:
        raise InvalidInput(
            "A field looks like it holds an Anthropic API key; it was not saved.",
            code="api_key_in_text",
            errors=keys,
        )


def column_limit(model: type[Model], field: str) -> int:
    """The most characters a model's text column holds."""
    column = model._meta.get_field(field)
    if not isinstance(column, CharField) or column.max_length is None:
        raise TypeError(f"{model.__name__}.{field} is not a text column with a max_length")
    return column.max_length
