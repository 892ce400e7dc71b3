"""The tables of the evals app.

- `eval_sets`: EvalSet, its immutable numbered EvalSetVersions and their EvalCases.
- `runs`: EvalRun, the paid and reusable CaseOutput with its CaseScores, and RunCase (per-run
  progress and the claim that keeps a killed worker from paying twice for a case).
- `gate`: GatePolicy per flag and the stored GateVerdicts with their evidence and overrides.
- `judges`: human JudgeLabels, the judge's JudgeVerdicts on them, and JudgeCalibrations (κ).
- `live`: LiveScoringPolicy per flag, LiveScore per sample and scorer, the claim that scores a
  sample once, per-minute LiveScoreRollups and the daily JudgeSpend.

The limits of an eval set are constants of `eval_sets`; the acting rule of a judge is in the pure
module `evals/agreement.py`.
"""

from evals.models.eval_sets import (
    MAX_CASE_BYTES,
    MAX_CASES_PER_VERSION,
    EvalCase,
    EvalSet,
    EvalSetVersion,
    VersionSource,
)
from evals.models.gate import GatePolicy, GateVerdict, VersionPolicy
from evals.models.judges import JudgeCalibration, JudgeLabel, JudgeVerdict
from evals.models.live import (
    ClaimState,
    JudgeSpend,
    LiveScore,
    LiveScoreClaim,
    LiveScoreRollup,
    LiveScoringPolicy,
)
from evals.models.runs import CaseOutput, CaseScore, EvalRun, RunCase, RunCaseState, RunMode, RunState

__all__ = [
    "MAX_CASES_PER_VERSION",
    "MAX_CASE_BYTES",
    "CaseOutput",
    "CaseScore",
    "ClaimState",
    "EvalCase",
    "EvalRun",
    "EvalSet",
    "EvalSetVersion",
    "GatePolicy",
    "GateVerdict",
    "JudgeCalibration",
    "JudgeLabel",
    "JudgeSpend",
    "JudgeVerdict",
    "LiveScore",
    "LiveScoreClaim",
    "LiveScoreRollup",
    "LiveScoringPolicy",
    "RunCase",
    "RunCaseState",
    "RunMode",
    "RunState",
    "VersionPolicy",
    "VersionSource",
]
