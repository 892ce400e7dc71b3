"""The evaluation engine: bucketing, constraint matching and flag resolution.

The one implementation of these rules; the server imports it. client/README.md ("Engine")
specifies the algorithm and the JSON shapes.
"""

from flagstaff.engine.bucketing import BUCKETS, bucket
from flagstaff.engine.constraints import (
    OPERATORS,
    Constraint,
    Context,
    compile_constraint,
    compile_constraints,
)
from flagstaff.engine.outcomes import Outcome, Share, outcomes
from flagstaff.engine.resolve import (
    DEFAULT_STICKINESS,
    MAX_EXPERIMENT_ARMS,
    Arm,
    Experiment,
    FlagDefinition,
    Reason,
    Resolution,
    Rollout,
    Rule,
    compile_segments,
    flag_from_dict,
    resolve,
    unit_of,
)
from flagstaff.engine.validation import ConstraintError, DefinitionError

__all__ = [
    "BUCKETS",
    "DEFAULT_STICKINESS",
    "MAX_EXPERIMENT_ARMS",
    "OPERATORS",
    "Arm",
    "Constraint",
    "ConstraintError",
    "Context",
    "DefinitionError",
    "Experiment",
    "FlagDefinition",
    "Outcome",
    "Reason",
    "Resolution",
    "Rollout",
    "Rule",
    "Share",
    "bucket",
    "compile_constraint",
    "compile_constraints",
    "compile_segments",
    "flag_from_dict",
    "outcomes",
    "resolve",
    "unit_of",
]
