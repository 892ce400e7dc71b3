"""Eval sets with marked cases for run tests: case i's prompt carries the marker `[case-i]`.

Built with the ORM because the eval-set services belong to another area; the rows are the ones
those services write (an ordered, hashed, immutable version).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.test import override_settings

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals.models import EvalCase, EvalSet, EvalSetVersion
from flags.catalog import seed_catalog
from flagstaff.canonical import canonical_json, content_hash

_sequence = itertools.count(1)


def marker(index: int) -> str:
    return f"[case-{index}]"


def make_eval_set_version(
    cases: int, *, scorers: list[dict[str, Any]] | None = None, prefix: str = "Question"
) -> EvalSetVersion:
    seed_catalog()
    eval_set = EvalSet.objects.create(key=f"set-{next(_sequence)}", surface="chat")
    rows = []
    for index in range(cases):
        case_input = {"messages": [{"role": "user", "content": f"{prefix} {marker(index)}"}], "variables": {}}
        reference = {"text": f"answer {index}"}
        rows.append(
            (
                case_input,
                reference,
                content_hash({"input": case_input, "reference": reference, "assertions": []}),
            )
        )
    version = EvalSetVersion.objects.create(
        eval_set=eval_set,
        number=1,
        source="api",
        author_name="tests",
        case_count=cases,
        content_hash=content_hash(canonical_json([row[2] for row in rows])),
        scorers=scorers or [],
    )
    EvalCase.objects.bulk_create(
        EvalCase(version=version, position=index, case_hash=case_hash, input=case_input, reference=reference)
        for index, (case_input, reference, case_hash) in enumerate(rows)
    )
    return version


@contextmanager
def anthropic_at(fake: FakeAnthropic, **settings: Any) -> Iterator[None]:
    """Point the control plane's Anthropic client at the fake (and apply extra settings)."""
    values = {"ANTHROPIC_API_KEY": DEFAULT_API_KEY, "ANTHROPIC_BASE_URL": fake.base_url} | settings
    with override_settings(**values):
        yield
