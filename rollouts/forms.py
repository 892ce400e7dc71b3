"""Forms of the rollouts pages: a new rollout, a new experiment, scheduling a change, and the
timeline's filters."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import urlencode

from django import forms
from django.conf import settings

from controlplane.errors import DomainError
from controlplane.forms import AuditFilterPickerForm
from controlplane.web import add_domain_error
from flags.models import Environment, Flag
from flagstaff.engine import BUCKETS, MAX_EXPERIMENT_ARMS
from rollouts.models import ScheduledChangeKind
from rollouts.plans import DEFAULT_STAGES, stage_fields
from rollouts.timeline import TIMELINE_ACTIONS


def _list_of_objects(value: Any, what: str) -> Any:
    """`value` when it is empty or a JSON list of objects, as the API takes `what`."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise forms.ValidationError(f"A JSON list of {what}, one object each, as the API takes them.")
    return value


def _percentages(text: str) -> list[Decimal]:
    """'1, 10, 50 %, 100' as percentages, refusing anything else by name."""
    values = []
    for token in (part for part in re.split(r"[,;\s]+", text.replace("%", " ")) if part):
        try:
            value = Decimal(token)
        except InvalidOperation:
            raise forms.ValidationError(f"'{token}' is not a percentage.") from None
        if not value.is_finite() or not 0 < value <= 100 or value != value.quantize(Decimal("0.01")):
            raise forms.ValidationError(f"'{token}': each stage is above 0 and at most 100 %, to 0.01 %.")
        values.append(value)
    return values


def _guardrails_field() -> forms.JSONField:
    """A new rollout's or experiment's guardrails: the flag's, or a JSON list as the API takes."""
    return forms.JSONField(
        required=False,
        label="Guardrails",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text='Empty: the flag\'s guardrails. Or a JSON list, e.g. [{"metric": "api_error_rate", '
        '"margin": 0.01, "critical": true}].',
    )


def _reason_field() -> forms.CharField:
    """Why a change is made: kept in the audit log, refused empty in a protected environment (by
    the views, and for a scheduled change by its service)."""
    return forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required in a protected environment; kept in the audit log.",
    )


class RolloutForm(forms.Form):
    """A rollout with the default stages and the flag's guardrails, or a plan of its own: the
    stages as percentages with how long each lasts (the stage editor), or the stages and the
    policy as the API takes them (JSON), and the analysis interval."""

    PLAN_FIELDS = ("stage_percents", "stage_minutes", "stage_max_minutes", "tick_interval_seconds")
    JSON_FIELDS = ("stages", "policy")
    EDITOR_FIELDS = ("stage_percents", "stage_minutes", "stage_max_minutes")

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
    reason = _reason_field()
    stage_percents = forms.CharField(
        required=False,
        max_length=200,
        label="Stages (% of units)",
        widget=forms.TextInput(attrs={"placeholder": "1, 10, 100", "inputmode": "decimal"}),
        help_text="Empty: 1, 10, then everyone (100). Each stage above the last; every stage but a "
        "last 100 is at most 50 %, so that the rest can be compared with it. A unit in one stage "
        "stays in the next.",
    )
    stage_minutes = forms.IntegerField(
        required=False,
        min_value=0,
        label="Each stage lasts at least (minutes)",
        help_text="Empty: 30 minutes for the first stage, 60 for the others. The candidate moves on "
        "only after this, with enough traffic, and when it is shown no worse.",
    )
    stage_max_minutes = forms.IntegerField(
        required=False,
        min_value=1,
        label="And at most (minutes)",
        help_text="Empty: 4 hours for the first stage, 12 for the others. A stage still undecided "
        "then pauses the rollout for a person.",
    )
    stages = forms.JSONField(
        required=False,
        label="Stages as JSON",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text='Instead of the stage fields above, as the API takes them, e.g. [{"weight": 1000, '
        '"min_duration_seconds": 0}, {"weight": 10000}] (weights in basis points).',
    )
    policy = _guardrails_field()
    tick_interval_seconds = forms.IntegerField(
        required=False,
        min_value=1,
        label="Analysis every (seconds)",
    )

    def clean_stages(self) -> Any:
        return _list_of_objects(self.cleaned_data.get("stages"), "stages")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The server's default in words, not the setting's name: the form is for product owners.
        interval = self.fields["tick_interval_seconds"]
        interval.help_text = (
            f"Empty: every {settings.FLAGSTAFF_ROLLOUT_TICK_SECONDS} seconds, this server's default."
        )

    def clean_policy(self) -> Any:
        return _list_of_objects(self.cleaned_data.get("policy"), "guardrails")

    def clean_stage_percents(self) -> list[Decimal]:
        return _percentages(self.cleaned_data.get("stage_percents") or "")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        edited = self._edited(cleaned)
        if edited and cleaned.get("stages") is not None:
            raise forms.ValidationError(
                "Give the stages either in the stage fields or as JSON, not both.", code="two_plans"
            )
        low, high = cleaned.get("stage_minutes"), cleaned.get("stage_max_minutes")
        if low is not None and high is not None and high < low:
            self.add_error("stage_max_minutes", "At least the minimum duration.")
        elif edited and "stage_percents" in cleaned:
            cleaned["stages"] = self._editor_stages(cleaned["stage_percents"], low, high)
        return cleaned

    @staticmethod
    def _editor_stages(percents: list[Decimal], low: int | None, high: int | None) -> list[dict[str, Any]]:
        """The editor's stages as the API takes them: a last stage of 100 % is the default
        promotion; the others take the first or the later default stage's durations and minimum
        samples, with the editor's durations where it gives them."""
        weights = [int(value * 100) for value in percents] or [spec.weight for spec in DEFAULT_STAGES]
        stages = []
        for index, weight in enumerate(weights):
            if weight == BUCKETS and index == len(weights) - 1:
                spec = DEFAULT_STAGES[-1]
            else:
                default = DEFAULT_STAGES[min(index, 1)]
                spec = replace(
                    default,
                    weight=weight,
                    min_duration_seconds=default.min_duration_seconds if low is None else low * 60,
                    max_duration_seconds=default.max_duration_seconds if high is None else high * 60,
                )
            stages.append(stage_fields(spec))
        return stages

    def service_arguments(self) -> dict[str, Any]:
        """What `lifecycle.create_rollout` takes."""
        return {name: value for name, value in self.cleaned_data.items() if name not in self.EDITOR_FIELDS}

    def add_refusal(self, error: DomainError) -> None:
        """The service's refusal at the fields: a stage's problem at the stage editor when the
        stages came from it ("Stage 2 (10 %): ..."), else at the JSON field or above the form."""
        if not self._edited(self.cleaned_data) or not error.errors:
            add_domain_error(self, error, nested=self.JSON_FIELDS)
            return
        percents = [stage["weight"] / 100 for stage in self.cleaned_data["stages"]]
        rest = []
        for issue in error.errors:
            found = re.match(r"stages(?:\[(\d+)\])?", issue.get("path", ""))
            if found is None:
                rest.append(issue)
            elif found.group(1) is None:
                self.add_error("stage_percents", issue["message"])
            else:
                index = int(found.group(1))
                self.add_error(
                    "stage_percents", f"Stage {index + 1} ({percents[index]:g} %): {issue['message']}"
                )
        if rest:
            add_domain_error(
                self, DomainError(error.detail, code=error.code, errors=rest), nested=self.JSON_FIELDS
            )

    def plan_open(self) -> bool:
        """Whether the page shows the plan's fields open: one of them was filled in, or a plan
        field (JSON ones included) was refused."""
        return any(self[name].data or self[name].errors for name in self.PLAN_FIELDS) or any(
            self[name].errors for name in self.JSON_FIELDS
        )

    def json_open(self) -> bool:
        """Whether the page shows the JSON fields open: filled in or refused."""
        return any(self[name].data or self[name].errors for name in self.JSON_FIELDS)

    @classmethod
    def _edited(cls, cleaned: dict[str, Any]) -> bool:
        """Whether the stage editor's fields were filled in."""
        return any(cleaned.get(name) not in (None, "", []) for name in cls.EDITOR_FIELDS)


ARM_ROWS = range(1, MAX_EXPERIMENT_ARMS)  # the candidates' rows of the form: 1, 2, 3


class _Candidate(NamedTuple):
    """A filled-in row of the new experiment's candidates."""

    row: int
    version: int
    name: str
    share: Decimal | None  # % of units, or None: the same as every arm


class ExperimentForm(forms.Form):
    """An A/B experiment: up to three candidate versions against what the environment serves,
    each with a name and a share of units (empty: every arm the same share, the baseline the
    rest), for a number of hours or until each arm has enough units; the flag's guardrails or
    the API's JSON list."""

    JSON_FIELDS = ("policy",)

    flag = forms.ModelChoiceField(queryset=Flag.objects.order_by("key"), to_field_name="key")
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("key"), to_field_name="key")
    window_hours = forms.IntegerField(
        required=False,
        min_value=1,
        initial=168,
        label="Runs for (hours)",
        help_text="A week is 168. The split ends then, and the arms are compared on all they served.",
    )
    required_units_per_arm = forms.IntegerField(
        required=False,
        min_value=2,
        label="Or until each arm has (units)",
        help_text="Ends as soon as every arm has served this many units, if that comes first.",
    )
    policy = _guardrails_field()
    reason = _reason_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for row in ARM_ROWS:
            self.fields[f"candidate_{row}"] = forms.IntegerField(
                required=row == 1, min_value=1, label=f"Candidate {row}: version"
            )
            self.fields[f"name_{row}"] = forms.CharField(
                required=False,
                max_length=32,
                label="Name",
                widget=forms.TextInput(attrs={"placeholder": "e.g. haiku"}),
            )
            self.fields[f"percent_{row}"] = forms.DecimalField(
                required=False,
                min_value=Decimal("0.01"),
                max_value=Decimal("99.99"),
                decimal_places=2,
                label="% of units",
            )

    def arm_rows(self) -> list[tuple[forms.BoundField, forms.BoundField, forms.BoundField]]:
        """Each candidate's three fields, a row of the form each."""
        return [(self[f"candidate_{row}"], self[f"name_{row}"], self[f"percent_{row}"]) for row in ARM_ROWS]

    def clean_policy(self) -> Any:
        return _list_of_objects(self.cleaned_data.get("policy"), "guardrails")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        candidates = []
        for row in ARM_ROWS:
            version, name, share = (cleaned.get(f"{part}_{row}") for part in ("candidate", "name", "percent"))
            if version is None:
                if (name or share is not None) and f"candidate_{row}" not in self.errors:
                    self.add_error(f"candidate_{row}", "Give this candidate's version, or clear its row.")
                continue
            candidates.append(_Candidate(row, version, name or "", share))
        shares = [candidate.share for candidate in candidates]
        if None in shares and any(share is not None for share in shares):
            self.add_error(
                None, "Give every candidate a share of units, or none (then every arm gets the same)."
            )
        elif shares and shares[0] is not None:
            total = sum(share for share in shares if share is not None)
            if total >= 100:
                self.add_error(
                    None, f"The candidates' shares add up to {total:g} %: leave some for the baseline."
                )
        if cleaned.get("window_hours") is None and cleaned.get("required_units_per_arm") is None:
            self.add_error("window_hours", "Give how long it runs, or how many units each arm needs.")
        cleaned["candidates"] = candidates
        return cleaned

    def service_arguments(self) -> dict[str, Any]:
        """What `experiments.create_experiment` takes: weights in basis points, the baseline's
        the rest of 10,000 (with no shares given, every arm gets 10,000 // arms and the baseline
        also the remainder)."""
        cleaned = self.cleaned_data
        candidates: list[_Candidate] = cleaned["candidates"]
        if candidates[0].share is None:
            weights = [BUCKETS // (len(candidates) + 1)] * len(candidates)
        else:
            weights = [int(candidate.share * 100) for candidate in candidates if candidate.share is not None]
        arms = [
            {
                "version": candidate.version,
                "weight": weight,
                **({"name": candidate.name} if candidate.name else {}),
            }
            for candidate, weight in zip(candidates, weights, strict=True)
        ]
        hours = cleaned.get("window_hours")
        return {
            "flag": cleaned["flag"],
            "environment": cleaned["environment"],
            "candidates": arms,
            "baseline_weight": BUCKETS - sum(weights),
            "window_seconds": None if hours is None else hours * 3600,
            "required_units_per_arm": cleaned.get("required_units_per_arm"),
            "policy": cleaned.get("policy"),
            "reason": cleaned.get("reason", ""),
        }

    def add_refusal(self, error: DomainError) -> None:
        """The service's refusal at the fields: a candidate's problem at its row (its name or
        share when the path names them, else its version), a guardrail at the JSON field, the
        rest above the form."""
        candidates: list[_Candidate] = self.cleaned_data["candidates"]
        rest = []
        for issue in error.errors:
            found = re.fullmatch(r"candidates\[(\d+)\](?:\.(\w+))?", issue.get("path", ""))
            if found is not None and int(found.group(1)) < len(candidates):
                part = {"name": "name", "weight": "percent"}.get(found.group(2) or "", "candidate")
                self.add_error(f"{part}_{candidates[int(found.group(1))].row}", issue["message"])
            else:
                rest.append(issue)
        if rest or not error.errors:
            add_domain_error(
                self, DomainError(error.detail, code=error.code, errors=rest), nested=self.JSON_FIELDS
            )


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
    reason = _reason_field()

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
