"""Eval sets and finished runs with exact per-case outcomes, for the gate and comparison tests.

The run service (evals-runs) fills RunCase rows by calling the fake Anthropic server; the gate
only reads finished runs, so these factories write the rows a finished run leaves behind.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from controlplane.audit import Actor
from evals.models import CaseOutput, EvalCase, EvalRun, EvalSet, EvalSetVersion, RunCase
from evals.models.runs import RunCaseState, RunState
from evals.services import gate
from flags import services as flag_services
from flags.catalog import seed_catalog
from flags.models import ConfigVersion, Environment, Flag
from telemetry.models import Rollup
from telemetry.price_table import clear_price_cache
from tests.factories import make_environment, make_flag, make_version

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


CANDIDATE_CASES = 300
_ACTOR = Actor.system("tests")


def _first(passes: int) -> list[bool]:
    return [i < passes for i in range(CANDIDATE_CASES)]


def _rollup(
    flag: Flag, environment: Environment, *, now: datetime, minutes_ago: int, **counters: int
) -> None:
    Rollup.objects.create(
        bucket=now - timedelta(minutes=minutes_ago),
        environment=environment,
        flag=flag,
        version=1,
        model="claude-sonnet-5-5",
        **counters,
    )


def make_three_candidates(*, now: datetime) -> tuple[Environment, Flag, EvalSetVersion]:
    """v1 Sonnet serving; candidates v2 Haiku (half the output), v3 Opus (1.5x), v4 never run."""
    seed_catalog()
    clear_price_cache()
    environment = make_environment(key="production")
    flag = make_flag(key="support-chat")
    v1 = make_version(flag=flag, content={"model": "claude-sonnet-5-5", "max_tokens": 512})
    v2 = make_version(flag=flag, content={"model": "claude-haiku-5-5", "max_tokens": 512})
    v3 = make_version(flag=flag, content={"model": "claude-opus-5-5", "max_tokens": 512})
    make_version(flag=flag, content={"model": "claude-haiku-5-5", "max_tokens": 256})
    flag_services.publish_version(flag=flag, environment=environment, number=1, actor=_ACTOR)
    esv = make_eval_set_version(cases=CANDIDATE_CASES, key="support-qa")
    gate.set_gate_policy(flag=flag, eval_set_key="support-qa", required_pass_rate=0.85, actor=_ACTOR)
    make_finished_run(
        version=v1,
        eval_set_version=esv,
        passed=_first(285),
        usage={"input_tokens": 1000, "output_tokens": 200},
    )
    make_finished_run(
        version=v2,
        eval_set_version=esv,
        passed=_first(285),
        usage={"input_tokens": 800, "cache_read_input_tokens": 200, "output_tokens": 100},
    )
    make_finished_run(
        version=v3,
        eval_set_version=esv,
        passed=_first(290),
        usage={"input_tokens": 1000, "output_tokens": 300},
    )
    # The last 7 days: 1,000 calls, 700,000 uncached + 300,000 cache-read prompt tokens, 200,000
    # out, billed at Sonnet's standard prices (2.4 $ + 1.03 $); a call 8 days old is left out.
    _rollup(
        flag,
        environment,
        now=now,
        minutes_ago=60,
        calls=600,
        input_tokens=600_000,
        output_tokens=120_000,
        cost_micro_usd=2_400_000,
    )
    _rollup(
        flag,
        environment,
        now=now,
        minutes_ago=3 * 24 * 60,
        calls=400,
        input_tokens=100_000,
        cache_read_tokens=300_000,
        output_tokens=80_000,
        cost_micro_usd=1_030_000,
    )
    _rollup(
        flag,
        environment,
        now=now,
        minutes_ago=8 * 24 * 60,
        calls=999,
        input_tokens=9_999_999,
        cost_micro_usd=1,
    )
    return environment, flag, esv
