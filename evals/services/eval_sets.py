"""Eval sets and their immutable versions: from cases, from a JSON Lines or CSV file, or from
sampled production calls. Nothing is half saved: every problem is reported, then nothing is."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput, TooLarge
from evals import case_files
from evals.cases import CaseIssue, CheckedCase, check_cases, version_hash
from evals.judges import judge_issues
from evals.models import (
    MAX_CASE_BYTES,
    MAX_CASES_PER_VERSION,
    EvalCase,
    EvalSet,
    EvalSetVersion,
    VersionSource,
)
from evals.scorers import validate_specs
from flags.models import KEY_VALIDATOR, Flag, Surface
from telemetry.models import Sample


@transaction.atomic
def create_eval_set(
    *, key: str, actor: Actor, surface: str | None = None, description: str = "", flag: Flag | None = None
) -> EvalSet:
    """A new, empty eval set; its surface is the owning flag's unless given."""
    surface = surface or (flag.surface if flag is not None else "")
    errors = []
    try:
        KEY_VALIDATOR(key)
    except ValidationError:
        errors.append({"path": "key", "message": str(KEY_VALIDATOR.message)})
    if surface not in Surface.values:
        errors.append({"path": "surface", "message": f"Choose one of: {', '.join(Surface.values)}."})
    if errors:
        raise InvalidInput("The eval set is not valid.", code="eval_set_invalid", errors=errors)
    try:
        with transaction.atomic():
            eval_set = EvalSet.objects.create(key=key, surface=surface, description=description, flag=flag)
    except IntegrityError:
        raise Conflict(f"An eval set with key '{key}' exists.", code="eval_set_exists") from None
    audit.record(
        actor=actor,
        action="eval_set.created",
        target=eval_set,
        changes={"key": key, "surface": surface, "flag": flag.key if flag else None},
        flag_key=flag.key if flag else "",
    )
    return eval_set


@transaction.atomic
def create_eval_set_version(
    *,
    eval_set: EvalSet,
    cases: Sequence[object],
    actor: Actor,
    scorers: object = None,
    message: str = "",
    source: str = VersionSource.API,
    parent: EvalSetVersion | None = None,
) -> EvalSetVersion:
    """The set's next version from case objects; errors name `cases[i].<path>` and `scorers[i]...`.

    Without `scorers`, the version keeps the scorer set of the set's latest version.
    """
    return _store_version(
        eval_set=eval_set,
        raws=cases,
        origins=None,
        actor=actor,
        scorers=scorers,
        message=message,
        source=source,
        parent=parent,
        where=lambda index: f"cases[{index}]",
    )


@transaction.atomic
def import_eval_set_version(
    *,
    eval_set: EvalSet,
    data: bytes,
    file_format: str,
    actor: Actor,
    scorers: object = None,
    message: str = "",
    parent: EvalSetVersion | None = None,
    source: str = VersionSource.IMPORT,
) -> EvalSetVersion:
    """The set's next version from a JSON Lines or CSV file; every error names its line."""
    limit = settings.FLAGSTAFF_EVAL_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise TooLarge(
            f"The file is {len(data):,} bytes; the limit is {limit:,} bytes.", code="import_too_large"
        )
    if file_format not in case_files.FORMATS:
        raise InvalidInput(
            f"Unknown format '{file_format}'.",
            code="eval_set_invalid",
            errors=[{"path": "format", "message": f"Use one of: {', '.join(case_files.FORMATS)}."}],
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            "The file is not UTF-8 text.",
            code="import_invalid",
            errors=[{"path": "file", "message": f"Byte {error.start} is not UTF-8."}],
        ) from None
    parsed = case_files.parse(text, file_format)
    if parsed.errors:
        raise InvalidInput(
            f"{len(parsed.errors)} line(s) of the file cannot be read; nothing was imported.",
            code="import_invalid",
            errors=[{"line": line, "path": path, "message": m} for line, path, m in parsed.errors],
        )
    return _store_version(
        eval_set=eval_set,
        raws=parsed.cases,
        origins=None,
        actor=actor,
        scorers=scorers,
        message=message,
        source=source,
        parent=parent,
        where=lambda index: f"line {parsed.lines[index]}",
        lines=parsed.lines,
    )


@transaction.atomic
def create_version_from_samples(
    *,
    eval_set: EvalSet,
    sample_ids: Sequence[int],
    actor: Actor,
    message: str = "",
    with_reference: bool = True,
) -> EvalSetVersion:
    """The latest version's cases plus one case per chosen sample; user ids are pseudonymised.

    A sampled call's answer becomes the case's reference text (and tool calls) when
    `with_reference`, so that the case first checks a candidate against what production said.
    """
    samples = {
        sample.pk: sample for sample in Sample.objects.select_related("call").filter(pk__in=list(sample_ids))
    }
    missing = [sample_id for sample_id in sample_ids if sample_id not in samples]
    if missing or not sample_ids:
        raise InvalidInput(
            "Choose samples that exist.",
            code="samples_invalid",
            errors=[{"path": "samples", "message": f"No sample with id {i}."} for i in missing]
            or [{"path": "samples", "message": "Choose at least one sample."}],
        )
    latest = _latest(eval_set)
    base = [case.as_case_dict() for case in latest.cases.all()] if latest else []
    sampled = [_case_from_sample(samples[i], with_reference=with_reference) for i in sample_ids]
    origins = [case.origin for case in latest.cases.all()] if latest else []
    origins += [samples[i].call.request_id for i in sample_ids]

    def where(index: int) -> str:
        if index < len(base):
            return f"cases[{index}]"
        return f"sample {sample_ids[index - len(base)]}"

    return _store_version(
        eval_set=eval_set,
        raws=[*base, *sampled],
        origins=origins,
        actor=actor,
        scorers=None,
        message=message or f"Added {len(sampled)} sampled call(s)",
        source=VersionSource.SAMPLES,
        parent=latest,
        where=where,
    )


def pseudonym(call_user_hash: str, user_id: str) -> str:
    """A stable stand-in for a user: derived from the stored HMAC, never from the raw id alone."""
    digest = call_user_hash or hashlib.sha256(user_id.encode()).hexdigest()
    return f"user-{digest[:12]}"


def _case_from_sample(sample: Sample, *, with_reference: bool) -> object:
    call = sample.call
    scrub: Callable[[Any], Any] = lambda value: value  # noqa: E731
    if call.user_id:
        alias = pseudonym(call.user_hash, call.user_id)
        scrub = lambda value: _replace_deep(value, call.user_id, alias)  # noqa: E731
    case: dict[str, Any] = {"input": {"messages": scrub(sample.input)}, "tags": ["sampled"]}
    output = sample.output if isinstance(sample.output, list) else []
    if with_reference and output:
        text = "".join(
            str(b.get("text", "")) for b in output if isinstance(b, dict) and b.get("type") == "text"
        )
        calls = [
            {"name": b.get("name"), "input": b.get("input", {})}
            for b in output
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        reference = {key: value for key, value in (("text", text), ("tool_calls", calls)) if value}
        if reference:
            case["reference"] = scrub(reference)
    return case


def _replace_deep(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_deep(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _replace_deep(item, old, new) for key, item in value.items()}
    return value


def _stored_case(case: EvalCase) -> dict[str, Any]:
    return {
        "input": case.input,
        "reference": case.reference,
        "assertions": case.assertions,
        "tags": case.tags,
    }


def _latest(eval_set: EvalSet) -> EvalSetVersion | None:
    return EvalSetVersion.objects.filter(eval_set=eval_set).order_by("-number").first()


def _store_version(
    *,
    eval_set: EvalSet,
    raws: Sequence[object],
    origins: Sequence[str] | None,
    actor: Actor,
    scorers: object,
    message: str,
    source: str,
    parent: EvalSetVersion | None,
    where: Callable[[int], str],
    lines: Sequence[int] | None = None,
) -> EvalSetVersion:
    # Lock the set so that two writers cannot both take the next number.
    eval_set = EvalSet.objects.select_for_update().get(pk=eval_set.pk)
    if len(raws) > MAX_CASES_PER_VERSION:
        raise TooLarge(
            f"A version holds at most {MAX_CASES_PER_VERSION:,} cases; this has {len(raws):,}.",
            code="too_many_cases",
        )
    latest = _latest(eval_set)
    if scorers is None:
        scorers = latest.scorers if latest else []
    specs, scorer_errors = validate_specs(scorers)
    scorer_errors += judge_issues(specs)
    cases, issues = check_cases(raws, max_cases=MAX_CASES_PER_VERSION, max_bytes=MAX_CASE_BYTES, name=where)
    errors = [_issue_dict(issue, where, lines) for issue in issues] + scorer_errors
    if errors:
        raise InvalidInput(
            f"{len(errors)} problem(s); nothing was saved.", code="eval_set_invalid", errors=errors
        )
    if parent is not None and parent.eval_set_id != eval_set.pk:
        raise InvalidInput("The parent version belongs to another eval set.", code="eval_set_invalid")
    number = (EvalSetVersion.objects.filter(eval_set=eval_set).aggregate(top=Max("number"))["top"] or 0) + 1
    version = EvalSetVersion.objects.create(
        eval_set=eval_set,
        number=number,
        parent=parent,
        source=source,
        message=message,
        author_name=actor.name,
        case_count=len(cases),
        content_hash=version_hash([case.case_hash for case in cases]),
        scorers=[spec.as_dict() for spec in specs],
    )
    EvalCase.objects.bulk_create(
        [_case_row(version, position, case, origins) for position, case in enumerate(cases)], batch_size=500
    )
    audit.record(
        actor=actor,
        action="eval_set.version_created",
        target=version,
        changes={
            "eval_set": eval_set.key,
            "number": number,
            "source": source,
            "case_count": len(cases),
            "content_hash": version.content_hash,
            "scorers": [spec.key for spec in specs],
            "parent": parent.number if parent else None,
        },
        reason=message,
        flag_key=eval_set.flag.key if eval_set.flag_id and eval_set.flag else "",
    )
    return version


def _case_row(
    version: EvalSetVersion, position: int, case: CheckedCase, origins: Sequence[str] | None
) -> EvalCase:
    return EvalCase(
        version=version,
        position=position,
        case_hash=case.case_hash,
        input=case.input,
        reference=case.reference,
        assertions=case.assertions,
        tags=case.tags,
        origin=origins[position] if origins else "",
    )


def _issue_dict(issue: CaseIssue, where: Callable[[int], str], lines: Sequence[int] | None) -> dict[str, Any]:
    if lines is not None:
        return {"line": lines[issue.index], "path": issue.path, "message": issue.message}
    path = where(issue.index) + (
        ("." + issue.path) if issue.path and not issue.path.startswith("[") else issue.path
    )
    return {"path": path, "message": issue.message}
