"""Forms of the evals pages: they check shape only; the services judge the content."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

from evals import case_files
from evals.models import EvalSetVersion, RunMode
from flags.models import Flag, Surface

_FORMAT_CHOICES = [(case_files.JSONL, "JSON Lines"), (case_files.CSV, "CSV")]


class EvalSetForm(forms.Form):
    key = forms.CharField(max_length=100, help_text="Lowercase letters, digits and hyphens")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    flag = forms.ModelChoiceField(
        queryset=Flag.objects.none(),
        required=False,
        to_field_name="key",
        help_text="The flag it gates (optional)",
    )
    surface = forms.ChoiceField(choices=[("", "The flag's surface"), *Surface.choices], required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["flag"].queryset = Flag.objects.active().exclude(surface=Surface.JUDGE)  # type: ignore[attr-defined]


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON Lines (one case per line) or CSV with a header row")
    format = forms.ChoiceField(choices=[("", "From the file name"), *_FORMAT_CHOICES], required=False)
    message = forms.CharField(max_length=2000, required=False)
    scorers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text='JSON list of scorer specs, e.g. [{"name": "contains"}]; empty keeps the current ones',
    )


class VersionEditForm(forms.Form):
    cases = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 18, "class": "code-editor"}))
    scorers = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 6, "class": "code-editor"}))
    message = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "What changed, and why"}),
    )


class SamplesForm(forms.Form):
    samples = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    with_reference = forms.BooleanField(
        required=False, initial=True, label="Use production's answer as the reference"
    )
    message = forms.CharField(max_length=2000, required=False)

    def __init__(self, *args: Any, sample_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["samples"].choices = [(i, str(i)) for i in sample_ids]  # type: ignore[attr-defined]


class LabelForm(forms.Form):
    case = forms.IntegerField(min_value=0)
    response = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 3}))
    passed = forms.TypedChoiceField(
        coerce=lambda value: value == "pass", choices=[("pass", "Pass"), ("fail", "Fail")]
    )


class LabelsImportForm(forms.Form):
    file = forms.FileField(
        help_text='JSON Lines: {"case": <position>, "response": <text>, "passed": true|false}'
    )


class CalibrateForm(forms.Form):
    version = forms.IntegerField(min_value=1)


class StartRunForm(forms.Form):
    """Run a saved version on an eval set version, through the Messages or the Batches API."""

    flag = forms.SlugField(max_length=100)
    version = forms.IntegerField(min_value=1)
    eval_set_version = forms.ChoiceField(choices=[], label="Eval set version")
    mode = forms.ChoiceField(choices=RunMode.choices, initial=RunMode.MESSAGES, label="Through")

    def __init__(self, *args: Any, eval_set_versions: Iterable[EvalSetVersion], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["eval_set_version"].choices = [  # type: ignore[attr-defined]
            (str(esv.pk), f"{esv.eval_set.key} v{esv.number} ({esv.case_count} cases)")
            for esv in eval_set_versions
        ]


class ComparisonRunForm(forms.Form):
    mode = forms.ChoiceField(choices=RunMode.choices, initial=RunMode.MESSAGES, label="Through")


class PublishWinnerForm(forms.Form):
    """Publishing is protected: it says why, and the reason is on the audit record."""

    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    environment = forms.SlugField(max_length=100, widget=forms.HiddenInput)
    reason = forms.CharField(
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "Why this version, for the audit log"}),
        help_text="Required: it is kept on the audit record",
    )
