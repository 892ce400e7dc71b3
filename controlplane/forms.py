"""Forms of the core app: the audit filter (the audit page and the audit API alike), tokens, users
and the login forms, throttled per account and client address."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.apps import apps
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from controlplane import login_throttle
from controlplane.models import ApiToken, AuditEntry, Role, Scope


class AuditFilterForm(forms.Form):
    since = forms.DateTimeField(required=False, help_text="ISO 8601, e.g. 2026-11-01T00:00:00Z")
    until = forms.DateTimeField(required=False)
    actor = forms.CharField(required=False, max_length=200)
    flag = forms.CharField(required=False, max_length=100)
    environment = forms.CharField(required=False, max_length=100)
    action = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Exact action or a prefix ending in '.'; several, separated by commas",
    )
    flag_wide = forms.BooleanField(
        required=False,
        help_text="With an environment: also the entries about the flag as a whole (its versions, "
        "gate verdicts), which name no environment",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Must be after 'since'.")
        return cleaned

    def apply(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        data = self.cleaned_data
        if data.get("since"):
            entries = entries.filter(created_at__gte=data["since"])
        if data.get("until"):
            entries = entries.filter(created_at__lt=data["until"])
        if data.get("actor"):
            entries = entries.filter(actor_name__icontains=data["actor"])
        if data.get("flag"):
            entries = entries.filter(flag_key=data["flag"])
        if data.get("environment"):
            environments = [data["environment"], *([""] if data.get("flag_wide") else [])]
            entries = entries.filter(environment_key__in=environments)
        actions = [action.strip() for action in (data.get("action") or "").split(",") if action.strip()]
        if actions:
            matches = Q()
            for action in actions:
                matches |= Q(action__startswith=action) if action.endswith(".") else Q(action=action)
            entries = entries.filter(matches)
        return entries

    def error_list(self) -> list[dict[str, str]]:
        return [
            {"path": field, "message": str(message)}
            for field, messages in self.errors.items()
            for message in messages
        ]


class AuditFilterPickerForm(AuditFilterForm):
    """The audit page's filters as pickers: what an auditor can choose is what the log holds
    (actions, flags, environments), the users and tokens that can act, and dates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Picking an environment on the page shows its entries; the API offers `flag_wide`.
        del self.fields["flag_wide"]
        entries = AuditEntry.objects.order_by()
        users = get_user_model().objects.order_by("username").values_list("username", flat=True)
        tokens = ApiToken.objects.order_by("name").values_list("name", flat=True)
        actors = [*users, *(f"token:{name}" for name in tokens)]
        self._pick("actor", "every actor", actors)
        self._pick("action", "every action", _distinct(entries, "action"))
        self._pick("flag", "every flag", _distinct(entries.exclude(flag_key=""), "flag_key"))
        self._pick(
            "environment",
            "every environment",
            _distinct(entries.exclude(environment_key=""), "environment_key"),
        )
        for name in ("since", "until"):
            self.fields[name].widget = forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            )
            self.fields[name].help_text = "UTC"

    def _pick(self, name: str, everything: str, values: Iterable[str]) -> None:
        choices = [("", everything), *((value, value) for value in values)]
        chosen = self.data.get(name, "")
        if chosen and chosen not in {value for value, _ in choices}:
            # A value typed into the URL (or an action prefix such as "version.") stays shown.
            choices.append((chosen, chosen))
        self.fields[name].widget = forms.Select(choices=choices)
        self.fields[name].help_text = ""


def _distinct(entries: QuerySet[AuditEntry], column: str) -> list[str]:
    """The values a column holds, each once, read from its index."""
    return list(entries.values_list(column, flat=True).distinct().order_by(column))


def _environments() -> QuerySet[Model]:
    # Tokens refer to flags.Environment by name, as the model does: the core app does not
    # import the flags app, which sits above it.
    return apps.get_model("flags", "Environment")._default_manager.order_by("key")


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        # Token listings show scope names, so each label names its scope where it differs.
        choices=[
            (scope, label if label.lower() == scope else f"{label} ({scope})")
            for scope, label in Scope.choices
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    environment = forms.ModelChoiceField(
        queryset=_environments(),
        required=False,
        to_field_name="key",
        empty_label="Every environment",
        help_text="Bind the token to one environment, or leave it acting on all.",
    )


class UserCreateForm(forms.Form):
    email = forms.EmailField(max_length=150, help_text="They log in with this address.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to generate one, shown once for you to pass on.",
    )


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    reason = forms.CharField(required=False, max_length=500)


class UserActiveForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class ThrottledLoginMixin:
    """Refuses a login while its account or client address is locked out, and counts failures
    (controlplane.login_throttle); for Django's AuthenticationForm and the admin's."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        address = login_throttle.client_address(self.request) if self.request is not None else ""
        locked = login_throttle.locked_out(username=username, address=address)
        if locked:
            raise ValidationError(login_throttle.refusal_message(locked), code="locked_out")
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except ValidationError as error:
            if error.code == "invalid_login":
                started = login_throttle.record_failure(username=username, address=address)
                if started:
                    raise ValidationError(
                        login_throttle.refusal_message(started), code="locked_out"
                    ) from None
            raise
        login_throttle.record_success(username=username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
