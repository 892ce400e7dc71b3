"""Forms of the incidents pages: per-flag budgets and webhooks."""

from __future__ import annotations

from typing import Any

from django import forms

from telemetry import budgets as rules
from telemetry.models.incidents import WebhookEvent


class BudgetForm(forms.Form):
    """Leave a field empty to use the surface default (or no cost budget)."""

    ttft_p95_ms = forms.IntegerField(
        label="TTFT p95 budget (ms)", required=False, min_value=1, max_value=rules.MAX_LATENCY_MS
    )
    total_p95_ms = forms.IntegerField(
        label="Total latency p95 budget (ms)", required=False, min_value=1, max_value=rules.MAX_LATENCY_MS
    )
    daily_cost_usd = forms.DecimalField(
        label="Daily cost budget (USD)",
        required=False,
        min_value=rules.MIN_DAILY_COST_USD,
        max_value=rules.MAX_DAILY_COST_USD,
        decimal_places=2,
    )
    reason = forms.CharField(required=False, max_length=2000, widget=forms.TextInput)

    def __init__(self, *args: Any, surface: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, default in rules.surface_defaults(surface).items():
            hint = f"{default:,} ms" if default is not None else "none"
            self.fields[key].help_text = f"Surface default: {hint}."
            self.fields[key].widget.attrs["placeholder"] = "" if default is None else str(default)
        self.fields[rules.DAILY_COST_USD].help_text = "No default: empty means no cost budget."

    def changes(self) -> dict[str, Any]:
        return {key: self.cleaned_data.get(key) for key in rules.BUDGET_KEYS}


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.CharField(max_length=500, label="URL", help_text="https:// only.")
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=list(WebhookEvent.values),
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput,
        help_text="Leave empty to generate one. It is shown once, after saving.",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)
