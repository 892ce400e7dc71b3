"""Forms of the rollouts pages: a new rollout, scheduling a change, and the timeline's filters."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms

from controlplane.forms import AuditFilterPickerForm
from flags.models import Environment, Flag
from rollouts.models import ScheduledChangeKind
from rollouts.timeline import TIMELINE_ACTIONS


def _list_of_objects(value: Any, what: str) -> Any:
    """`value` when it is empty or a JSON list of objects, as the API takes `what`."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise forms.ValidationError(f"A JSON list of {what}, one object each, as the API takes them.")
    return value


class RolloutForm(forms.Form):
    """A rollout with the default stages and the flag's guardrails, or a plan of its own (the
    stages and the policy as the API takes them, and the analysis interval)."""

    PLAN_FIELDS = ("stages", "policy", "tick_interval_seconds")
    JSON_FIELDS = ("stages", "policy")

    flag = forms.ModelChoiceField(queryset=Flag.objects.order_by("key"), to_field_name="key")
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("key"), to_field_name="key")
    candidate = forms.IntegerField(
        min_value=1, label="Candidate version", help_text="The version to move onto traffic in stages."
    )
    paired_replay_scorer = forms.CharField(
        required=False,
        max_length=47,  # the guardrail's name, "paired_pass_rate:<key>", holds 64 characters
        label="Paired replay scorer (optional)",
        help_text="A live scorer's key: control-arm inputs are also replayed through the candidate "
        "(never served) and both answers scored, a paired guardrail that needs far fewer samples.",
    )
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required in a protected environment; kept in the audit log.",
    )
    stages = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text='Empty: 1 %, 10 %, then everyone. Or a JSON list, e.g. [{"weight": 1000, '
        '"min_duration_seconds": 0}, {"weight": 10000}] (weights in basis points).',
    )
    policy = forms.JSONField(
        required=False,
        label="Guardrails",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text='Empty: the flag\'s guardrails. Or a JSON list, e.g. [{"metric": "api_error_rate", '
        '"margin": 0.01, "critical": true}].',
    )
    tick_interval_seconds = forms.IntegerField(
        required=False,
        min_value=1,
        label="Analysis every (seconds)",
        help_text="Empty: FLAGSTAFF_ROLLOUT_TICK_SECONDS.",
    )

    def clean_stages(self) -> Any:
        return _list_of_objects(self.cleaned_data.get("stages"), "stages")

    def clean_policy(self) -> Any:
        return _list_of_objects(self.cleaned_data.get("policy"), "guardrails")


class ScheduleForm(forms.Form):
    flag = forms.ModelChoiceField(queryset=Flag.objects.order_by("key"), to_field_name="key")
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("key"), to_field_name="key")
    kind = forms.ChoiceField(choices=ScheduledChangeKind.choices, label="Change")
    run_at = forms.DateTimeField(
        label="When (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Applied within a few seconds of this time.",
    )
    version = forms.IntegerField(
        required=False, min_value=1, help_text="To publish, or to serve to a share of units."
    )
    weight_percent = forms.DecimalField(
        required=False,
        min_value=0,
        max_value=100,
        decimal_places=2,
        label="Share of units (%)",
        help_text="For a split change only.",
    )
    rollout = forms.IntegerField(required=False, min_value=1, help_text="For a rollout start: its number.")
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required in a protected environment; kept in the audit log.",
    )

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        percent = data.get("weight_percent")
        return {
            "flag": data["flag"],
            "environment": data["environment"],
            "kind": data["kind"],
            "run_at": data["run_at"],
            "version": data.get("version"),
            "weight": None if percent is None else int(percent * 100),
            "rollout": data.get("rollout"),
            "reason": data.get("reason") or "",
        }


class TimelineForm(AuditFilterPickerForm):
    """The audit filters a timeline offers (flag, environment, time, actor); the actions are the
    timeline's, and a flag's timeline in an environment keeps the flag's own entries (its
    versions, gate verdicts), which name no environment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["action"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        cleaned["action"] = ",".join(TIMELINE_ACTIONS)
        cleaned["flag_wide"] = bool(cleaned.get("flag"))
        return cleaned

    def export_query(self, export_format: str) -> str:
        """The audit export's query string for these very entries."""
        query = {name: self.data.get(name, "") for name in ("since", "until", "actor", "flag", "environment")}
        query.update(
            format=export_format,
            action=",".join(TIMELINE_ACTIONS),
            flag_wide="true" if query["flag"] and query["environment"] else "",
        )
        return urlencode({name: value for name, value in query.items() if value})


class ReplayPolicyForm(forms.Form):
    """A rollout's paired replay settings (rollouts/services/paired_replay.py)."""

    enabled = forms.BooleanField(required=False, label="Replay control-arm samples")
    sample_rate = forms.FloatField(
        min_value=0, max_value=1, label="Sample rate", help_text="Share of control-arm samples replayed."
    )
    daily_call_budget = forms.IntegerField(min_value=0, label="Replays per day")
    daily_budget_usd = forms.DecimalField(
        min_value=0, decimal_places=2, label="Budget per day (USD)", help_text="Replays and judges, UTC days."
    )
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "enabled": data["enabled"],
            "sample_rate": data["sample_rate"],
            "daily_call_budget": data["daily_call_budget"],
            "daily_budget_micro_usd": int(data["daily_budget_usd"] * 1_000_000),
            "reason": data.get("reason") or "",
        }
