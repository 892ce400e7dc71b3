"""Eval sets: versions from cases, files and samples; nothing half saved; every error located."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput, TooLarge
from evals.eval_set_reads import export_cases
from evals.models import EvalCase, EvalSet, EvalSetVersion
from evals.services import eval_sets
from telemetry.models import Sample
from telemetry.services.ingest import ingest_calls
from tests.factories import audit_mark, audit_since, make_flag
from tests.telemetry.call_factories import make_record

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def case(text: str, **extra: Any) -> dict[str, Any]:
    return {"input": {"messages": [{"role": "user", "content": text}]}, **extra}


def new_set(key: str = "support") -> EvalSet:
    return eval_sets.create_eval_set(key=key, surface="chat", actor=ACTOR)


def test_create_eval_set__same_key_twice__conflict() -> None:
    new_set()
    with pytest.raises(Conflict) as raised:
        new_set()
    assert raised.value.code == "eval_set_exists"


def test_create_eval_set__bad_key_and_surface__both_named() -> None:
    with pytest.raises(InvalidInput) as raised:
        eval_sets.create_eval_set(key="Bad Key", surface="fax", actor=ACTOR)
    assert [e["path"] for e in raised.value.errors] == ["key", "surface"]


def test_create_eval_set__with_flag__takes_its_surface() -> None:
    eval_set = eval_sets.create_eval_set(key="agentic", flag=make_flag(surface="agent"), actor=ACTOR)
    assert eval_set.surface == "agent"


def test_create_eval_set_version__cases__numbered_hashed_and_audited() -> None:
    eval_set = new_set()
    mark = audit_mark()
    first = eval_sets.create_eval_set_version(
        eval_set=eval_set,
        cases=[case("a", reference={"text": "A"}), case("b", tags=["x", "x"])],
        scorers=[{"name": "exact"}],
        actor=ACTOR,
    )
    second = eval_sets.create_eval_set_version(eval_set=eval_set, cases=[case("c")], actor=ACTOR)
    assert (first.number, first.case_count, second.number) == (1, 2, 2)
    assert (
        second.scorers
        == first.scorers
        == [
            {"name": "exact", "key": "exact", "params": {}, "weight": 1.0, "threshold": 1.0, "required": True}
        ]
    )
    assert list(first.cases.values_list("tags", flat=True)) == [[], ["x"]]
    assert [e.action for e in audit_since(mark)] == ["eval_set.version_created"] * 2


def test_create_eval_set_version__duplicate_case__refused_naming_both_and_nothing_saved() -> None:
    eval_set = new_set()
    with pytest.raises(InvalidInput) as raised:
        eval_sets.create_eval_set_version(
            eval_set=eval_set, cases=[case("a"), case("b"), case("a", tags=["t"])], actor=ACTOR
        )
    assert raised.value.errors == [{"path": "cases[2]", "message": "Duplicate of cases[0]."}]
    assert EvalSetVersion.objects.count() == EvalCase.objects.count() == 0


def test_create_eval_set_version__bad_case_and_scorer__every_path_named() -> None:
    with pytest.raises(InvalidInput) as raised:
        eval_sets.create_eval_set_version(
            eval_set=new_set(),
            cases=[case("ok"), {"input": {"messages": [{"role": "robot", "content": "x"}]}}, {"prompt": "x"}],
            scorers=[{"name": "json_schema", "params": {"schema": {"type": 5}}}],
            actor=ACTOR,
        )
    assert [e["path"] for e in raised.value.errors] == [
        "cases[1].input.messages[0].role",
        "cases[2].prompt",
        "cases[2].input",
        "scorers[0].params.schema.type",
    ]


def test_create_eval_set_version__case_over_one_mebibyte__refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        eval_sets.create_eval_set_version(eval_set=new_set(), cases=[case("x" * (1024 * 1024))], actor=ACTOR)
    assert raised.value.errors[0]["path"] == "cases[0]"
    assert "the limit is 1,048,576 bytes" in raised.value.errors[0]["message"]


def test_create_eval_set_version__over_ten_thousand_cases__too_large() -> None:
    with pytest.raises(TooLarge) as raised:
        eval_sets.create_eval_set_version(
            eval_set=new_set(), cases=[case(str(i)) for i in range(10_001)], actor=ACTOR
        )
    assert raised.value.code == "too_many_cases"


JSONL = (
    '{"input": {"messages": [{"role": "user", "content": "Hi"}]}, "reference": {"text": "Hello"}}\n'
    "\n"
    '{"input": {"messages": [{"role": "user", "content": "Bye"}]}, "assertions": '
    '[{"type": "contains", "value": "bye"}], "tags": ["exit"]}\n'
)


def test_import__jsonl__creates_a_version() -> None:
    version = eval_sets.import_eval_set_version(
        eval_set=new_set(), data=JSONL.encode(), file_format="jsonl", actor=ACTOR
    )
    assert (version.case_count, version.source) == (2, "import")


def test_import__malformed_lines__each_named_by_line_and_nothing_saved() -> None:
    data = JSONL + "{not json\n" + '{"input": {"messages": []}}\n' + JSONL.splitlines()[0] + "\n"
    with pytest.raises(InvalidInput) as raised:
        eval_sets.import_eval_set_version(
            eval_set=new_set(), data=data.encode(), file_format="jsonl", actor=ACTOR
        )
    assert [(e["line"], e["path"]) for e in raised.value.errors] == [(4, "")]
    data = JSONL + '{"input": {"messages": []}}\n' + JSONL.splitlines()[0] + "\n"
    with pytest.raises(InvalidInput) as raised:
        eval_sets.import_eval_set_version(
            eval_set=new_set("two"), data=data.encode(), file_format="jsonl", actor=ACTOR
        )
    assert raised.value.errors == [
        {"line": 4, "path": "input.messages", "message": "The messages are a non-empty list of turns."},
        {"line": 5, "path": "", "message": "Duplicate of line 1."},
    ]
    assert EvalSetVersion.objects.count() == 0


def test_import__csv_with_prompt_and_errors__line_numbers_count_the_header() -> None:
    data = 'prompt,reference_text,tags\nHi,Hello,"a, b"\n"multi\nline",x,\nBye,,"[1]"\n'
    with pytest.raises(InvalidInput) as raised:
        eval_sets.import_eval_set_version(
            eval_set=new_set(), data=data.encode(), file_format="csv", actor=ACTOR
        )
    assert [(e["line"], e["path"]) for e in raised.value.errors] == [(5, "tags")]


def test_import__csv_unknown_column__header_line_named() -> None:
    with pytest.raises(InvalidInput) as raised:
        eval_sets.import_eval_set_version(
            eval_set=new_set(), data=b"question\nHi\n", file_format="csv", actor=ACTOR
        )
    assert raised.value.errors[0]["line"] == 1


@override_settings(FLAGSTAFF_EVAL_IMPORT_MAX_BYTES=10)
def test_import__file_over_the_limit__too_large() -> None:
    with pytest.raises(TooLarge):
        eval_sets.import_eval_set_version(
            eval_set=new_set(), data=JSONL.encode(), file_format="jsonl", actor=ACTOR
        )


def test_import__not_utf8__refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        eval_sets.import_eval_set_version(
            eval_set=new_set(), data=b"\xff\xfe", file_format="jsonl", actor=ACTOR
        )
    assert raised.value.code == "import_invalid"


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_export__then_import__same_cases_same_hash(file_format: str) -> None:
    cases = [
        case("Hi", reference={"text": "Hello", "json": {"a": 1}}, tags=["greeting"]),
        case("Refund", reference={"tool_calls": [{"name": "refund", "input": {"id": 1}}]}),
        {
            "input": {
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Q"}]}],
                "variables": {"n": 1},
            },
            "assertions": [{"type": "regex", "value": "^A"}],
        },
    ]
    original = eval_sets.create_eval_set_version(eval_set=new_set(), cases=cases, actor=ACTOR)
    data = export_cases(original, file_format)
    again = eval_sets.import_eval_set_version(
        eval_set=new_set("copy"), data=data.encode(), file_format=file_format, actor=ACTOR
    )
    assert again.content_hash == original.content_hash
    assert [c.as_case_dict() for c in again.cases.all()] == [c.as_case_dict() for c in original.cases.all()]


@override_settings(FLAGSTAFF_TELEMETRY_STORE_RAW_USER_ID=True)
def test_create_version_from_samples__adds_cases_with_pseudonymous_users() -> None:
    eval_set = new_set()
    eval_sets.create_eval_set_version(eval_set=eval_set, cases=[case("existing")], actor=ACTOR)
    record = make_record(
        user_id="alice@example.com",
        sample={
            "input": [{"role": "user", "content": "I am alice@example.com, where is my parcel?"}],
            "output": [{"type": "text", "text": "Your parcel, alice@example.com, is in Lyon."}],
        },
    )
    ingest_calls(records=[record])
    sample = Sample.objects.get()
    version = eval_sets.create_version_from_samples(eval_set=eval_set, sample_ids=[sample.pk], actor=ACTOR)
    added = version.cases.get(position=1)
    dumped = json.dumps(added.as_case_dict())
    assert "alice" not in dumped
    alias = eval_sets.pseudonym(sample.call.user_hash, "alice@example.com")
    assert added.input["messages"][0]["content"] == f"I am {alias}, where is my parcel?"
    assert added.reference == {"text": f"Your parcel, {alias}, is in Lyon."}
    assert (version.number, version.case_count, version.source, added.origin) == (
        2,
        2,
        "samples",
        record["request_id"],
    )


def test_create_version_from_samples__unknown_sample__refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        eval_sets.create_version_from_samples(eval_set=new_set(), sample_ids=[999], actor=ACTOR)
    assert raised.value.errors == [{"path": "samples", "message": "No sample with id 999."}]
