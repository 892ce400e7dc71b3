"""Eval sets and finished runs with exact per-case outcomes, for the gate and comparison tests.

The run service (evals-runs) fills RunCase rows by calling the fake Anthropic server; the gate
only reads finished runs, so these factories write the rows a finished run leaves behind.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from evals.models import CaseOutput, EvalCase, EvalRun, EvalSet, EvalSetVersion, RunCase
from evals.models.runs import RunCaseState, RunState
from flags.models import ConfigVersion, Flag

_sequence = itertools.count(1)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_eval_set_version(
    *, cases: int, key: str | None = None, eval_set: EvalSet | None = None, **overrides: Any
) -> EvalSetVersion:
    if eval_set is None:
        eval_set = EvalSet.objects.create(key=key or f"set-{next(_sequence)}", surface="chat")
    number = (eval_set.versions.count() or 0) + 1
    hashes = [_sha(f"{eval_set.key}:{number}:{i}") for i in range(cases)]
    fields: dict[str, Any] = {
        "eval_set": eval_set,
        "number": number,
        "source": "api",
        "author_name": "tests",
        "case_count": cases,
        "content_hash": _sha("".join(hashes)),
        "scorers": [
            {"name": "contains", "params": {"text": "ok"}, "weight": 1.0, "threshold": 0.5, "required": True}
        ],
    }
    fields.update(overrides)
    version = EvalSetVersion.objects.create(**fields)
    EvalCase.objects.bulk_create(
        EvalCase(
            version=version,
            position=i,
            case_hash=h,
            input={"messages": [{"role": "user", "content": f"q{i}"}]},
        )
        for i, h in enumerate(hashes)
    )
    return version


def make_finished_run(
    *,
    version: ConfigVersion,
    eval_set_version: EvalSetVersion,
    passed: Sequence[bool | None],
    scores: Sequence[float] | None = None,
    cost_micro_usd: int | None = 100,
    latency_ms: int = 500,
    usage: dict[str, int] | None = None,
) -> EvalRun:
    """A succeeded run whose i-th case passed as `passed[i]` says (None: the case errored)."""
    cases = list(eval_set_version.cases.order_by("position"))
    assert len(cases) == len(passed)
    flag: Flag = version.flag
    now = timezone.now()
    run = EvalRun.objects.create(
        flag=flag,
        config_version=version,
        content_hash=version.content_hash,
        eval_set_version=eval_set_version,
        state=RunState.SUCCEEDED,
        cases_total=len(cases),
        cases_done=len(cases),
        created_by="tests",
        started_at=now,
        finished_at=now,
    )
    for i, (case, ok) in enumerate(zip(cases, passed, strict=True)):
        output, _ = CaseOutput.objects.get_or_create(
            content_hash=version.content_hash,
            case_hash=case.case_hash,
            defaults={
                "output": [{"type": "text", "text": "ok" if ok else "no"}],
                "text": "ok" if ok else "no",
                "stop_reason": "end_turn",
                "usage": usage or {"input_tokens": 1000, "output_tokens": 200},
                "cost_micro_usd": cost_micro_usd,
                "latency_ms": latency_ms + i,
                "model": version.content.get("model", ""),
            },
        )
        score = scores[i] if scores is not None else (1.0 if ok else 0.0)
        RunCase.objects.create(
            run=run,
            case=case,
            state=RunCaseState.DONE if ok is not None else RunCaseState.ERROR,
            output=output,
            passed=ok,
            score=score if ok is not None else None,
            error="" if ok is not None else "scorer error",
            finished_at=now,
        )
    return run
