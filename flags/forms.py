"""Forms of the flags pages; the services do the domain checks, these check shape."""

from __future__ import annotations

import json
from typing import Any

import yaml
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from controlplane.errors import DomainError
from flags import services
from flags.config_text import LocatedIssue, NoAliasLoader, locate_issues
from flags.models import KEY_VALIDATOR, Flag, Surface
from flags.validation import ValidationResult
from flagstaff.engine import OPERATORS
from flagstaff.engine.constraints import LIST_OPERATORS
from flagstaff.nesting import render_path, too_deep, too_deep_message


class FlagForm(forms.Form):
    key = forms.CharField(
        max_length=100, validators=[KEY_VALIDATOR], help_text="Lowercase letters, digits and hyphens."
    )
    name = forms.CharField(max_length=200, required=False)
    surface = forms.ChoiceField(choices=Surface.choices)
    owner = forms.CharField(max_length=200, required=False, help_text="A team or a person.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class EnvironmentForm(forms.Form):
    # Shares the flag list page with FlagForm, whose fields have the same names.
    prefix = "environment"

    key = forms.CharField(max_length=100, validators=[KEY_VALIDATOR])
    name = forms.CharField(max_length=200, required=False)


class PublishForm(forms.Form):
    version = forms.IntegerField(min_value=1)


def _nested_too_deeply(path: list[str | int]) -> ValidationError:
    """The depth error; `path` is empty when the text was too deep for the parser itself."""
    where = f" (at {render_path(path)})" if path else ""
    return ValidationError(too_deep_message(settings.FLAGSTAFF_MAX_JSON_DEPTH) + where)


def _check_depth(document: object) -> object:
    path = too_deep(document, settings.FLAGSTAFF_MAX_JSON_DEPTH)
    if path is not None:
        raise _nested_too_deeply(path)
    return document


class ConfigSyntaxError(ValidationError):
    """Config text that does not parse, and the line where the parser stopped."""

    def __init__(self, message: str, *, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def parse_config_text(text: str) -> object:
    """Read JSON, or YAML when the text is not JSON; a syntax error names its line and column."""
    try:
        return _check_depth(json.loads(text))
    except json.JSONDecodeError as error:
        json_error = error
    except RecursionError:
        raise _nested_too_deeply([]) from None
    except ValueError:
        # Not a syntax error: an integer beyond Python's digit limit.
        raise ValidationError("A number in the JSON has too many digits.") from None
    try:
        content = yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise _nested_too_deeply([]) from None
    except ValueError:
        raise ValidationError("A number in the YAML has too many digits.") from None
    except yaml.YAMLError as error:
        # Text that opens like JSON was meant as JSON: its error is the useful one.
        if text.lstrip().startswith(("{", "[")):
            where = f"line {json_error.lineno}, column {json_error.colno}"
            raise ConfigSyntaxError(
                f"JSON syntax error at {where}: {json_error.msg}.", line=json_error.lineno
            ) from None
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigSyntaxError(
            f"YAML syntax error{where}: {problem}.", line=mark.line + 1 if mark else None
        ) from None
    _check_depth(content)
    try:
        json.dumps(content, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError(
            "The YAML holds values JSON cannot (dates, times, .inf, .nan): quote them."
        ) from None
    return content


def starter_content(surface: str) -> dict[str, Any]:
    """A small valid config to start a flag's first version from."""
    content: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 2048,
        "system": "You are a helpful assistant.",
        "cache_control": {"type": "ephemeral"},
    }
    if surface == Surface.AGENT:
        content["max_iterations"] = 20
    if surface == Surface.JUDGE:
        content.pop("cache_control")
        # Sonnet 5.5 refuses forced tool use, which a judge's structured verdict needs.
        content["model"] = "claude-haiku-5-5"
        content["max_tokens"] = 1024
        content["system"] = (
            "You judge answers of a support assistant. Pass an answer only if it is correct, "
            "answers the question asked, and is polite. Explain your verdict in one sentence."
        )
        content["tools"] = [
            {
                "name": "record_verdict",
                "description": "Record the verdict on the answer.",
                "input_schema": {
                    "type": "object",
                    "properties": {"passed": {"type": "boolean"}, "explanation": {"type": "string"}},
                    "required": ["passed", "explanation"],
                },
            }
        ]
        content["tool_choice"] = {"type": "tool", "name": "record_verdict"}
    return content


class VersionForm(forms.Form):
    """The version editor; every submission is also checked against the schema and the catalog."""

    # The template renders the textarea itself, with its htmx attributes.
    content = forms.CharField(strip=False, widget=forms.Textarea)
    message = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "What changed, and why"}),
    )
    parent = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)
    intent = forms.ChoiceField(choices=[("save", "Save"), ("validate", "Check")], required=False)

    def __init__(self, *args: Any, flag: Flag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag
        self.validation: ValidationResult | None = None
        self.syntax_error_line: int | None = None

    @property
    def saving(self) -> bool:
        return self.cleaned_data.get("intent") != "validate"

    def located_issues(self) -> dict[str, list[LocatedIssue]]:
        """The check's errors and warnings, each with its line in the text as submitted."""
        if self.validation is None:
            return {"errors": [], "warnings": []}
        text = self.data.get("content", "")
        located = locate_issues(text, [*self.validation.errors, *self.validation.warnings])
        split = len(self.validation.errors)
        return {"errors": located[:split], "warnings": located[split:]}

    def clean_content(self) -> object:
        try:
            return parse_config_text(self.cleaned_data["content"])
        except ConfigSyntaxError as error:
            self.syntax_error_line = error.line
            raise

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "content" not in cleaned:
            return cleaned
        try:
            self.validation = services.validate_content(flag=self.flag, content=cleaned["content"])
        except DomainError as error:
            self.add_error("content", error.detail)
            return cleaned
        if self.saving and not self.validation.ok:
            raise ValidationError(f"The config has {len(self.validation.errors)} error(s); it was not saved.")
        return cleaned


# Targeting: rules, splits, "try a context" and segments. Constraints are JSON (the engine's
# shape) or, for one constraint, a row of fields; the services check them and name the path.


def parse_json_text(text: str, *, expect: type, what: str) -> Any:
    """Read JSON of the expected type; a syntax error names its line and column."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}."
        ) from None
    except RecursionError:
        raise _nested_too_deeply([]) from None
    except ValueError:
        raise ValidationError("A number in the JSON has too many digits.") from None
    _check_depth(value)
    if not isinstance(value, expect):
        raise ValidationError(f"Write {what}.")
    return value


def _set_choices(field: forms.Field, choices: list[tuple[Any, str]]) -> None:
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


class ConstraintRowFields(forms.Form):
    """One constraint as form fields: the simple editor next to the JSON one."""

    context_name = forms.CharField(
        max_length=100,
        required=False,
        label="Context field",
        widget=forms.TextInput(attrs={"placeholder": "plan"}),
    )
    operator = forms.ChoiceField(
        choices=[(name, name) for name in sorted(OPERATORS)], initial="IN", required=False
    )
    values = forms.CharField(
        required=False,
        max_length=10_000,
        help_text="Comma-separated for IN, NOT_IN, STR_* and IN_CIDR; a single value otherwise.",
        widget=forms.TextInput(attrs={"placeholder": "pro, enterprise"}),
    )
    inverted = forms.BooleanField(required=False, label="Inverted (NOT)")
    case_insensitive = forms.BooleanField(required=False, label="Case-insensitive")

    def row_constraint(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        name = data.get("context_name", "").strip()
        if not name:
            return None
        operator, text = data.get("operator") or "IN", data.get("values", "")
        constraint: dict[str, Any] = {"contextName": name, "operator": operator}
        if operator in LIST_OPERATORS:
            constraint["values"] = [value.strip() for value in text.split(",") if value.strip()]
        else:
            constraint["value"] = text.strip()
        if data.get("inverted"):
            constraint["inverted"] = True
        if data.get("case_insensitive"):
            constraint["caseInsensitive"] = True
        return constraint


class RuleForm(ConstraintRowFields):
    constraints = forms.CharField(
        required=False,
        label="Constraints (JSON)",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "code"}),
        help_text='A list such as [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]; '
        "the row above is added to it. All must match.",
    )
    segments = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    version = forms.TypedChoiceField(coerce=int, label="Serve")
    description = forms.CharField(max_length=500, required=False)
    everyone = forms.BooleanField(
        required=False,
        label="For everyone",
        help_text="A rule without constraints or segments serves every context, and nothing after it "
        "(the split, the serving version) is reached: tick this to mean it.",
    )
    position = forms.IntegerField(
        min_value=0, required=False, help_text="0 puts the rule first; empty puts it last."
    )

    def __init__(self, *args: Any, versions: list[int], segments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(self.fields["version"], [(number, f"v{number}") for number in versions])
        _set_choices(self.fields["segments"], [(key, key) for key in segments])

    def clean_constraints(self) -> list[Any]:
        text = self.cleaned_data["constraints"].strip()
        return parse_json_text(text, expect=list, what="a JSON list of constraints") if text else []

    def rule(self) -> dict[str, Any]:
        """The add_rule arguments."""
        data = self.cleaned_data
        row = self.row_constraint()
        return {
            "constraints": [*data["constraints"], *([row] if row else [])],
            "segments": data["segments"],
            "version": data["version"],
            "description": data["description"],
            "everyone": data["everyone"],
            "position": data.get("position"),
        }


class RuleEditForm(RuleForm):
    """A rule's fields to change in place: its constraints as JSON, no position."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["position"]

    @staticmethod
    def initial_for(rule: dict[str, Any]) -> dict[str, Any]:
        return {
            "constraints": json.dumps(rule.get("constraints", []), indent=2, ensure_ascii=False),
            "segments": rule.get("segments", []),
            "version": rule.get("version"),
            "description": rule.get("description", ""),
            "everyone": bool(rule.get("everyone")),
        }


class FlagEditForm(forms.Form):
    name = forms.CharField(max_length=200)
    surface = forms.ChoiceField(choices=Surface.choices)
    owner = forms.CharField(max_length=200, required=False, help_text="A team or a person.")
    stickiness = forms.CharField(
        max_length=100, help_text="The context field that keeps a unit in its split; changing it re-buckets."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(max_length=2000, required=False)


class RuleMoveForm(forms.Form):
    to = forms.IntegerField(min_value=0)


class SplitForm(forms.Form):
    candidate = forms.TypedChoiceField(coerce=int)
    percent = forms.DecimalField(
        min_value=0,
        max_value=100,
        decimal_places=2,
        label="Weight (%)",
    )
    reason = forms.CharField(max_length=2000, required=False)

    def __init__(self, *args: Any, versions: list[int], serving: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(self.fields["candidate"], [(n, f"v{n}") for n in versions if n != serving])

    @property
    def weight(self) -> int:
        """The weight in basis points (1 % = 100)."""
        return int(self.cleaned_data["percent"] * 100)


class TryContextForm(forms.Form):
    context = forms.CharField(
        strip=False,
        max_length=1024 * 1024,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "code"}),
        initial='{"targetingKey": "user-1", "plan": "pro"}',
        help_text="A JSON object, as services send it.",
    )

    def clean_context(self) -> dict[str, Any]:
        context: dict[str, Any] = parse_json_text(
            self.cleaned_data["context"], expect=dict, what="a JSON object"
        )
        return context


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    constraints = forms.CharField(
        required=False,
        label="Constraints (JSON)",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
        help_text="A list of constraints, all of which must match.",
    )

    def clean_constraints(self) -> list[Any]:
        text = self.cleaned_data["constraints"].strip()
        return parse_json_text(text, expect=list, what="a JSON list of constraints") if text else []


class SegmentCreateForm(SegmentForm):
    key = forms.CharField(
        max_length=100, validators=[KEY_VALIDATOR], help_text="Lowercase letters, digits and hyphens."
    )
    field_order = ["key", "name", "description", "constraints"]
