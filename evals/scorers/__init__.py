"""Scorers: pure functions that grade an answer, each returning a score in [0, 1], a pass at the
spec's threshold, and an explanation a product owner understands, or an error (never a failure).

- `base`: Answer, Case, Context (resolved judges, the config's max_iterations), Outcome, Result.
- `deterministic`: exact, contains, regex, json_schema, json_fields, tool_calls, end_turn,
  output_tokens. `similarity`: rouge_l (the `rouge-score` library). `agent`: task_completion
  and the per-case assertions. `judge`: llm_judge through the Messages API.
- `registry`: names and versions, spec and parameter validation with paths, whether a scorer
  is reference-free (live scoring uses only those), running a scorer, combining a scorer set.

No Django here: the services resolve judges and prices and store the results.
"""

from evals.scorers.base import Answer, Case, Context, Judge, Result, ScorerError
from evals.scorers.registry import (
    SCORERS,
    CaseVerdict,
    ScorerSpec,
    combine,
    is_reference_free,
    params_hash,
    run_scorer,
    scorer_versions,
    validate_specs,
)

__all__ = [
    "SCORERS",
    "Answer",
    "Case",
    "CaseVerdict",
    "Context",
    "Judge",
    "Result",
    "ScorerError",
    "ScorerSpec",
    "combine",
    "is_reference_free",
    "params_hash",
    "run_scorer",
    "scorer_versions",
    "validate_specs",
]
