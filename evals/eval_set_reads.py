"""What the eval set pages and API read: sets with their latest version, cases, files, samples."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, QuerySet

from evals import case_files
from evals.models import EvalSet, EvalSetVersion
from flags.models import Flag
from telemetry.models import Sample

SAMPLES_SHOWN = 200


def eval_sets_with_latest() -> QuerySet[EvalSet]:
    """Every eval set with `latest_number` annotated, by key."""
    return (
        EvalSet.objects.select_related("flag").annotate(latest_number=Max("versions__number")).order_by("key")
    )


def export_cases(version: EvalSetVersion, file_format: str) -> str:
    """The version's cases as a JSON Lines or CSV file that imports back to the same cases."""
    cases = [case.as_case_dict() for case in version.cases.order_by("position")]
    return case_files.to_jsonl(cases) if file_format == case_files.JSONL else case_files.to_csv(cases)


@dataclass(frozen=True)
class SampleRow:
    id: int
    request_id: str
    created_at: object
    version: int | None
    arm: str
    preview: str


def recent_samples(flag: Flag | None, *, limit: int = SAMPLES_SHOWN) -> list[SampleRow]:
    """The newest samples (of the set's flag when it has one) to choose cases from."""
    samples = Sample.objects.select_related("call").order_by("-created_at", "-pk")
    if flag is not None:
        samples = samples.filter(call__flag_id=flag.pk)
    return [
        SampleRow(
            id=sample.pk,
            request_id=sample.call.request_id,
            created_at=sample.created_at,
            version=sample.call.version,
            arm=sample.call.arm,
            preview=_preview(sample.input),
        )
        for sample in samples[:limit]
    ]


def _preview(messages: object, limit: int = 160) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            text = str(content)
            return text if len(text) <= limit else text[:limit] + "…"
    return ""
