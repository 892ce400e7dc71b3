"""The config content JSON Schema, and its errors rewritten as plain-language issues."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, TypeGuard

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import best_match

from flags.validation.issues import Issue, format_path, join_path, show
from flagstaff.api_keys import redact

CONFIG_SCHEMA: Final[dict[str, Any]] = json.loads(
    Path(__file__).with_name("schema.json").read_text(encoding="utf-8")
)


def is_whole_number(value: object) -> TypeGuard[int]:
    """An integer as written in JSON. JSON Schema also counts 1.0 and 1e6 as integers, but they
    parse as floats: the model-limit rules skipped them, and PostgreSQL's jsonb hands 1e308 back
    as a 309-digit integer. Booleans are not numbers."""
    return isinstance(value, int) and not isinstance(value, bool)


_STRICT_TYPES: Final = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, instance: is_whole_number(instance)
)
_ConfigValidator: Final = validators.extend(Draft202012Validator, type_checker=_STRICT_TYPES)
_CONFIG_VALIDATOR: Final = _ConfigValidator(CONFIG_SCHEMA)
_METASCHEMA_VALIDATOR: Final = Draft202012Validator(Draft202012Validator.META_SCHEMA)

_TYPE_NAMES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_CODES = {
    "required": "required",
    "additionalProperties": "unknown_field",
    "type": "wrong_type",
    "enum": "invalid_value",
    "const": "invalid_value",
    "minimum": "out_of_range",
    "maximum": "out_of_range",
    "minLength": "invalid_format",
    "pattern": "invalid_format",
    "uniqueItems": "duplicate_value",
    "not": "not_allowed",
}
# Short enums are listed in full; long ones (server tool types) get a "did you mean".
_MAX_LISTED_CHOICES = 6


def schema_issues(content: object) -> list[Issue]:
    """Problems of shape: everything the JSON Schema of config content rejects."""
    return _issues(_CONFIG_VALIDATOR.iter_errors(content), prefix="")


def json_schema_issues(document: object, *, path: str) -> list[Issue]:
    """Problems that make `document` an invalid JSON Schema (draft 2020-12)."""
    return [
        Issue(issue.path, f"Not a valid JSON Schema: {issue.message}", "invalid_json_schema")
        for issue in _issues(_METASCHEMA_VALIDATOR.iter_errors(document), prefix=path)
    ]


def _issues(errors: Iterable[ValidationError], *, prefix: str) -> list[Issue]:
    # A `required` error is reported once per missing field, so identical issues are merged.
    unique: dict[tuple[str, str], Issue] = {}
    for error in errors:
        for issue in _rewrite(error, prefix):
            unique.setdefault((issue.path, issue.message), issue)
    return list(unique.values())


def _rewrite(error: ValidationError, prefix: str) -> list[Issue]:
    path = format_path(error.absolute_path, prefix)
    instance: Any = error.instance
    expected: Any = error.validator_value
    code = _CODES.get(str(error.validator), "invalid")
    if error.validator == "required":
        return [
            Issue(join_path(path, name), f"'{name}' is required.", code)
            for name in expected
            if isinstance(instance, dict) and name not in instance
        ]
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        return [
            Issue(format_path([*error.absolute_path, name], prefix), f"Unknown field {show(name)}.", code)
            for name in instance
            if name not in known
        ]
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _rewrite(best_match(error.context), prefix)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    return [Issue(path, custom if isinstance(custom, str) else _message(error), code)]


def _message(error: ValidationError) -> str:
    instance: Any = error.instance
    expected: Any = error.validator_value
    match error.validator:
        case "type":
            wanted = [expected] if isinstance(expected, str) else list(expected)
            return f"Expected {' or '.join(_TYPE_NAMES[name] for name in wanted)}, got {_kind(instance)}."
        case "enum":
            return _enum_message(instance, list(expected))
        case "const":
            return f"Must be {show(expected)}, not {show(instance)}."
        case "minimum":
            return f"Must be at least {expected}."
        case "maximum":
            return f"Must be at most {expected}."
        case "minLength":
            return "Must not be empty." if expected == 1 else f"Must be at least {expected} characters long."
        case "pattern":
            return f"{show(instance)} is not in the expected format."
        case "uniqueItems":
            return "Contains the same value more than once."
        case "not":
            return "This field is not allowed here."
    return redact(error.message)


def _enum_message(instance: object, choices: list[object]) -> str:
    if len(choices) <= _MAX_LISTED_CHOICES:
        return f"{show(instance)} is not allowed; use one of: {', '.join(str(choice) for choice in choices)}."
    known = [str(choice) for choice in choices]
    close = difflib.get_close_matches(instance, known, n=1) if isinstance(instance, str) else []
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{show(instance)} is not a known value.{hint}"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else "null"
