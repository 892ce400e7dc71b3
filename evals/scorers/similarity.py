"""Text similarity to the reference: ROUGE-L with Google's `rouge-score` implementation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evals.scorers.base import Answer, Case, Context, Outcome


def rouge_l(answer: Answer, case: Case, params: Mapping[str, Any], context: Context) -> Outcome:
    """The F-measure of ROUGE-L (longest common subsequence of tokens) against the reference text."""
    from rouge_score import rouge_scorer

    reference = str(case.reference_field("text"))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=bool(params.get("stemmer", True)))
    score = float(scorer.score(reference, answer.text)["rougeL"].fmeasure)
    return Outcome(
        score,
        f"The answer shares {score:.0%} of its wording with the reference, in order (ROUGE-L F-measure).",
    )
