"""Judge calibration: human labels, the judge version's verdicts on them, and Cohen's κ.

Running a judge over its labels calls the API once per label without a verdict of that
version; each verdict is stored as it comes (unique per version and label), so a killed
worker resumes where it stopped and never pays twice for a label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import InvalidInput
from evals.agreement import cohens_kappa, is_acting
from evals.judges import scoring_context
from evals.models import EvalCase, EvalSetVersion, JudgeCalibration, JudgeLabel, JudgeVerdict
from evals.scorers import Answer, Case, run_scorer, validate_specs
from flags.models import ConfigVersion, Flag, Surface

MAX_RESPONSE_CHARS = 100_000


def _check_judge(judge: Flag) -> None:
    if judge.surface != Surface.JUDGE:
        raise InvalidInput(f"Flag '{judge.key}' is not a judge (surface 'judge').", code="not_a_judge")


@transaction.atomic
def set_label(*, judge: Flag, case: EvalCase, response: str, human_passed: bool, actor: Actor) -> JudgeLabel:
    """Record (or change) a human's pass/fail on an answer to a case; earlier verdicts on it are dropped."""
    _check_judge(judge)
    if not response.strip() or len(response) > MAX_RESPONSE_CHARS:
        raise InvalidInput(
            "The judged answer is empty or too long.",
            code="label_invalid",
            errors=[{"path": "response", "message": f"Give 1 to {MAX_RESPONSE_CHARS:,} characters."}],
        )
    label, created = JudgeLabel.objects.get_or_create(
        judge=judge,
        case=case,
        defaults={"response": response, "human_passed": human_passed, "labelled_by": actor.name},
    )
    if not created and (label.response, label.human_passed) != (response, human_passed):
        if label.response != response:
            # The verdicts judged another answer; they would no longer compare like with like.
            label.verdicts.all().delete()
        label.response, label.human_passed, label.labelled_by = response, human_passed, actor.name
        label.save(update_fields=["response", "human_passed", "labelled_by", "updated_at"])
    audit.record(
        actor=actor,
        action="judge.label_set",
        target=label,
        changes={"judge": judge.key, "case": case.pk, "human_passed": human_passed},
        flag_key=judge.key,
    )
    return label


@transaction.atomic
def import_labels(*, judge: Flag, version: EvalSetVersion, data: bytes, actor: Actor) -> int:
    """Labels from JSON Lines: {"case": <position>, "response": <text>, "passed": <bool>} per line.

    Every line is checked first; one bad line and nothing is saved.
    """
    _check_judge(judge)
    cases = {case.position: case for case in version.cases.all()}
    rows: list[tuple[EvalCase, str, bool]] = []
    errors: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise InvalidInput("The file is not UTF-8 text.", code="import_invalid") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as error:
            errors.append({"line": number, "path": "", "message": f"Not valid JSON: {error.args[0]}."})
            continue
        problems = _label_problems(raw, cases)
        if not problems and raw["case"] in seen:
            problems = [("case", f"Case {raw['case']} is labelled on line {seen[raw['case']]} already.")]
        errors += [{"line": number, "path": path, "message": message} for path, message in problems]
        if not problems:
            seen[raw["case"]] = number
            rows.append((cases[raw["case"]], raw["response"], raw["passed"]))
    if errors or not rows:
        raise InvalidInput(
            f"{len(errors)} line(s) cannot be imported; nothing was saved."
            if errors
            else "The file has no labels.",
            code="import_invalid",
            errors=errors,
        )
    for case, response, passed in rows:
        set_label(judge=judge, case=case, response=response, human_passed=passed, actor=actor)
    return len(rows)


def _label_problems(raw: object, cases: dict[int, EvalCase]) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        return [("", 'A label is {"case": <position>, "response": <text>, "passed": true|false}.')]
    problems = [(key, "Unknown field.") for key in sorted(set(raw) - {"case", "response", "passed"})]
    position = raw.get("case")
    if isinstance(position, bool) or not isinstance(position, int) or position not in cases:
        problems.append(("case", f"No case at position {position!r} in this version."))
    response = raw.get("response")
    if not isinstance(response, str) or not response.strip() or len(response) > MAX_RESPONSE_CHARS:
        problems.append(
            ("response", f"The judged answer is a text of 1 to {MAX_RESPONSE_CHARS:,} characters.")
        )
    if not isinstance(raw.get("passed"), bool):
        problems.append(("passed", "The human verdict is true or false."))
    return problems


def judge_labels(*, judge_version: ConfigVersion, actor: Actor) -> JudgeCalibration:
    """Run the judge version over every label it has not judged yet, then compute its calibration.

    Not atomic on purpose: each verdict is committed as soon as it is paid for.
    """
    _check_judge(judge_version.flag)
    specs, _ = validate_specs(
        [{"name": "llm_judge", "params": {"judge": judge_version.flag.key, "version": judge_version.number}}]
    )
    context = scoring_context(specs)
    pending = (
        JudgeLabel.objects.filter(judge=judge_version.flag)
        .exclude(verdicts__judge_version=judge_version)
        .select_related("case")
        .order_by("pk")
    )
    for label in pending:
        case = Case(input=label.case.input, reference=label.case.reference, assertions=label.case.assertions)
        result = run_scorer(specs[0], Answer.from_text(label.response), case, context)
        JudgeVerdict.objects.bulk_create(
            [
                JudgeVerdict(
                    judge_version=judge_version,
                    label=label,
                    score=result.score,
                    passed=result.passed,
                    error=result.error,
                    explanation=result.explanation,
                    cost_micro_usd=result.cost_micro_usd,
                )
            ],
            ignore_conflicts=True,
        )
    return compute_calibration(judge_version=judge_version, actor=actor)


@transaction.atomic
def compute_calibration(*, judge_version: ConfigVersion, actor: Actor) -> JudgeCalibration:
    """Agreement and κ of the version's verdicts with the current human labels (errors left out)."""
    pairs: Sequence[tuple[bool, bool]] = [
        (human, bool(judged))
        for human, judged in JudgeVerdict.objects.filter(
            judge_version=judge_version, passed__isnull=False, label__judge=judge_version.flag
        ).values_list("label__human_passed", "passed")
    ]
    agreement = cohens_kappa(pairs)
    calibration = JudgeCalibration.objects.create(
        judge_version=judge_version,
        n_labels=agreement.n,
        agreement=agreement.agreement,
        kappa=agreement.kappa,
        computed_by=actor.name,
    )
    audit.record(
        actor=actor,
        action="judge.calibrated",
        target=calibration,
        changes={
            "judge": judge_version.flag.key,
            "version": judge_version.number,
            "n_labels": agreement.n,
            "agreement": agreement.agreement,
            "kappa": agreement.kappa,
            "acting": is_acting(kappa=agreement.kappa, n_labels=agreement.n),
        },
        flag_key=judge_version.flag.key,
    )
    return calibration
