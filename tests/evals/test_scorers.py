"""Every deterministic and similarity scorer: a valid answer, a failing one, and an error."""

from __future__ import annotations

from typing import Any

import pytest

from evals.scorers import Answer, Case, Context, Result, combine, run_scorer, validate_specs
from evals.scorers.registry import ScorerSpec, is_reference_free, params_hash


def spec(name: str, **fields: Any) -> ScorerSpec:
    specs, errors = validate_specs([{"name": name, **fields}])
    assert errors == []
    return specs[0]


def score(
    name: str, answer: Answer, case: Case | None = None, *, context: Context | None = None, **fields: Any
) -> Result:
    return run_scorer(
        spec(name, **fields), answer, case or Case(input={"messages": []}), context or Context()
    )


def ref(**reference: Any) -> Case:
    return Case(input={"messages": [{"role": "user", "content": "Hi"}]}, reference=reference)


def test_exact__same_text_after_strip__passes() -> None:
    result = score("exact", Answer.from_text(" Paris \n"), ref(text="Paris"))
    assert (result.score, result.passed) == (1.0, True)


def test_exact__other_case__fails_and_says_what_was_expected() -> None:
    result = score("exact", Answer.from_text("paris"), ref(text="Paris"))
    assert (result.passed, "'Paris'" in result.explanation) == (False, True)


def test_exact__case_insensitive__passes() -> None:
    assert score(
        "exact", Answer.from_text("paris"), ref(text="Paris"), params={"case_sensitive": False}
    ).passed


def test_exact__no_reference_text__is_an_error_not_a_failure() -> None:
    result = score("exact", Answer.from_text("Paris"))
    assert (result.passed, result.score, result.error) == (
        None,
        None,
        "The case has no reference text to compare with.",
    )


def test_contains__literal_text__passes() -> None:
    assert score("contains", Answer.from_text("The capital is Paris."), params={"text": "Paris"}).passed


def test_contains__missing_text__fails() -> None:
    assert score("contains", Answer.from_text("The capital is Lyon."), ref(text="Paris")).passed is False


def test_contains__no_reference__errors() -> None:
    assert score("contains", Answer.from_text("x")).is_error


def test_regex__matching_answer__passes() -> None:
    result = score("regex", Answer.from_text("Order #12345 shipped"), params={"pattern": r"#\d{5}\b"})
    assert result.passed


def test_regex__ignorecase_flag__passes() -> None:
    assert score(
        "regex", Answer.from_text("REFUND"), params={"pattern": "refund", "flags": ["IGNORECASE"]}
    ).passed


def test_regex__no_match__fails() -> None:
    assert score("regex", Answer.from_text("no order"), params={"pattern": r"#\d+"}).passed is False


def test_validate_specs__regex_that_does_not_compile__names_the_pattern_path() -> None:
    _, errors = validate_specs([{"name": "exact"}, {"name": "regex", "params": {"pattern": "(unclosed"}}])
    assert [e["path"] for e in errors] == ["scorers[1].params.pattern"]
    assert "does not compile" in errors[0]["message"]


SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def test_json_schema__conforming_json__passes() -> None:
    assert score(
        "json_schema", Answer.from_text('```json\n{"total": 3}\n```'), params={"schema": SCHEMA}
    ).passed


def test_json_schema__missing_field__fails_and_names_it() -> None:
    result = score("json_schema", Answer.from_text('{"sum": 3}'), params={"schema": SCHEMA})
    assert result.passed is False
    assert "'total' is a required property" in result.explanation


def test_json_schema__answer_not_json__errors() -> None:
    result = score("json_schema", Answer.from_text("three"), params={"schema": SCHEMA})
    assert result.is_error
    assert "not JSON" in result.error


def test_validate_specs__schema_that_is_not_one__names_the_schema_path() -> None:
    _, errors = validate_specs([{"name": "json_schema", "params": {"schema": {"type": "objekt"}}}])
    assert [e["path"] for e in errors] == ["scorers[0].params.schema.type"]


def test_json_fields__all_fields_right__full_score() -> None:
    result = score(
        "json_fields",
        Answer.from_text('{"city": "Paris", "zip": "75001"}'),
        ref(json={"city": "Paris", "zip": "75001"}),
    )
    assert (result.score, result.passed) == (1.0, True)


def test_json_fields__one_wrong_field__partial_score_names_it() -> None:
    result = score(
        "json_fields",
        Answer.from_text('{"city": "Paris", "zip": "75002", "country": "FR"}'),
        ref(json={"city": "Paris", "zip": "75001", "country": "FR", "street": "Rue"}),
        threshold=0.5,
    )
    assert (result.score, result.passed) == (0.5, True)
    assert result.explanation.endswith("wrong or missing: zip, street.")


def test_json_fields__reference_not_an_object__errors() -> None:
    assert score("json_fields", Answer.from_text("{}"), ref(json=[1, 2])).is_error


def _tool_answer(*calls: tuple[str, dict[str, Any]]) -> Answer:
    return Answer(
        content=[{"type": "tool_use", "id": f"t{i}", "name": n, "input": a} for i, (n, a) in enumerate(calls)]
    )


CALLS = [{"name": "lookup", "input": {"id": 1}}, {"name": "refund", "input": {"id": 1, "amount": 5}}]


def test_tool_calls__same_calls_in_order__passes() -> None:
    answer = _tool_answer(("lookup", {"id": 1}), ("refund", {"amount": 5, "id": 1}))
    assert score("tool_calls", answer, ref(tool_calls=CALLS)).score == 1.0


def test_tool_calls__swapped_order_when_ordered__fails() -> None:
    answer = _tool_answer(("refund", {"id": 1, "amount": 5}), ("lookup", {"id": 1}))
    assert score("tool_calls", answer, ref(tool_calls=CALLS)).score == 0.0


def test_tool_calls__swapped_order_when_unordered__passes() -> None:
    answer = _tool_answer(("refund", {"id": 1, "amount": 5}), ("lookup", {"id": 1}))
    assert score("tool_calls", answer, ref(tool_calls=CALLS), params={"ordered": False}).passed


def test_tool_calls__wrong_argument__fails_half() -> None:
    answer = _tool_answer(("lookup", {"id": 1}), ("refund", {"id": 1, "amount": 50}))
    result = score("tool_calls", answer, ref(tool_calls=CALLS))
    assert (result.score, result.passed) == (0.5, False)


def test_tool_calls__reference_call_without_name__errors() -> None:
    assert score("tool_calls", _tool_answer(), ref(tool_calls=[{"input": {}}])).is_error


def test_end_turn__finished__passes() -> None:
    assert score("end_turn", Answer.from_text("ok")).passed


def test_end_turn__max_tokens__fails() -> None:
    assert score("end_turn", Answer.from_text("cut", stop_reason="max_tokens")).passed is False


def test_end_turn__no_stop_reason__errors() -> None:
    assert score("end_turn", Answer.from_text("?", stop_reason=None)).is_error


def test_output_tokens__within_ceiling__passes() -> None:
    answer = Answer.from_message({"content": [], "stop_reason": "end_turn", "usage": {"output_tokens": 100}})
    assert score("output_tokens", answer, params={"max": 100}).passed


def test_output_tokens__over_ceiling__fails() -> None:
    answer = Answer.from_message({"content": [], "usage": {"output_tokens": 101}})
    assert score("output_tokens", answer, params={"max": 100}).passed is False


def test_output_tokens__unknown_count__errors() -> None:
    assert score("output_tokens", Answer.from_text("x"), params={"max": 100}).is_error


def test_rouge_l__identical__scores_one() -> None:
    assert (
        score("rouge_l", Answer.from_text("the cat sat on the mat"), ref(text="the cat sat on the mat")).score
        == 1.0
    )


def test_rouge_l__partial_overlap__matches_the_library_value() -> None:
    # LCS of "the cat sat on the mat" and "the cat lay on a mat" is "the cat on mat" (4 of 6
    # tokens each way): P = R = F = 4/6.
    result = score("rouge_l", Answer.from_text("the cat lay on a mat"), ref(text="the cat sat on the mat"))
    assert result.score == pytest.approx(4 / 6)
    assert result.passed is True


def test_rouge_l__unrelated__fails() -> None:
    assert score("rouge_l", Answer.from_text("bonjour"), ref(text="the cat sat")).passed is False


def test_rouge_l__no_reference__errors() -> None:
    assert score("rouge_l", Answer.from_text("x")).is_error


AGENT_CASE = Case(
    input={"messages": []},
    assertions=[{"type": "contains", "value": "refunded"}, {"type": "tool_called", "value": "refund"}],
)


def _agent_answer(text: str, *, stop_reason: str = "end_turn", iterations: int = 3) -> Answer:
    content: list[dict[str, Any]] = [
        {"type": "tool_use", "id": "t", "name": "refund", "input": {}},
        {"type": "text", "text": text},
    ]
    return Answer(content=content, stop_reason=stop_reason, iterations=iterations)


def test_task_completion__assertions_met_within_limits__passes() -> None:
    result = score(
        "task_completion", _agent_answer("I refunded it."), AGENT_CASE, context=Context(max_iterations=5)
    )
    assert (result.score, result.passed) == (1.0, True)


def test_task_completion__over_iterations_and_cut__fails_with_reasons() -> None:
    answer = _agent_answer("Working on it", stop_reason="max_tokens", iterations=9)
    result = score("task_completion", answer, AGENT_CASE, context=Context(max_iterations=5))
    assert result.passed is False
    assert result.score == pytest.approx(1 / 4)
    assert "max_tokens" in result.explanation
    assert "over the limit of 5" in result.explanation


def test_task_completion__malformed_assertion__errors() -> None:
    case = Case(input={"messages": []}, assertions=[{"type": "contains"}])
    assert score("task_completion", _agent_answer("x"), case).is_error


def test_validate_specs__unknown_name_and_bad_fields__every_path_named() -> None:
    _, errors = validate_specs(
        [
            {"name": "exactly"},
            {"name": "contains", "params": {"txt": "a"}, "threshold": 2},
            {"name": "output_tokens"},
            {"name": "exact", "key": "exact"},
        ]
    )
    assert [e["path"] for e in errors] == [
        "scorers[0].name",
        "scorers[1].params.txt",
        "scorers[1].threshold",
        "scorers[2].params.max",
    ]


def test_validate_specs__same_key_twice__refused() -> None:
    _, errors = validate_specs(
        [{"name": "contains", "params": {"text": "a"}}, {"name": "contains", "params": {"text": "b"}}]
    )
    assert errors == [{"path": "scorers[1].key", "message": "The key 'contains' is used twice in this set."}]


def test_is_reference_free__literal_contains_and_judge_yes__rouge_no() -> None:
    assert [
        is_reference_free(spec("contains", params={"text": "a"})),
        is_reference_free(spec("contains")),
        is_reference_free(spec("llm_judge", params={"judge": "tone"})),
        is_reference_free(spec("rouge_l")),
    ] == [True, False, True, False]


def test_params_hash__threshold_or_judge_version_changes__differs() -> None:
    base = spec("llm_judge", params={"judge": "tone"})
    other = spec("llm_judge", params={"judge": "tone"}, threshold=0.5)
    assert len({params_hash(base), params_hash(other), params_hash(base, judge_version_id=7)}) == 3


def test_combine__required_failure__case_fails_with_weighted_score() -> None:
    specs = [spec("exact", key="a", weight=3), spec("contains", key="b", required=False)]
    verdict = combine(specs, [Result(1.0, True, ""), Result(0.0, False, "")])
    assert (verdict.passed, verdict.score) == (True, 0.75)


def test_combine__required_error__case_undecided_not_failed() -> None:
    specs = [spec("exact", key="a"), spec("contains", key="b")]
    verdict = combine(specs, [Result(1.0, True, ""), Result(None, None, "", error="boom")])
    assert (verdict.passed, verdict.score) == (None, 1.0)
