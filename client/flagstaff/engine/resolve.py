"""Flag definitions (compiled from their JSON shape) and resolution of a flag for a context.

Resolution order (DESIGN.md, "Resolution"):
1. disabled -> DISABLED, no value;
2. first matching targeting rule -> its version, TARGETING_MATCH;
3. experiment -> the arm's version, SPLIT;
4. rollout -> candidate if bucket < weight, else baseline (control band [w, 2w) while
   w <= 5000), SPLIT;
5. otherwise the serving version, STATIC.
A unit without the stickiness attribute, or outside an experiment's arms, gets the serving
version with reason DEFAULT and no arm: it is not counted in the split.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from flagstaff.engine.bucketing import BUCKETS, bucket
from flagstaff.engine.constraints import (
    UNUSABLE,
    Constraint,
    Context,
    as_text,
    compile_constraints,
    lookup,
)
from flagstaff.engine.validation import (
    DefinitionError,
    join,
    read_bool,
    read_int,
    read_list,
    read_name,
    read_object,
)

Reason = Literal["DISABLED", "TARGETING_MATCH", "SPLIT", "STATIC", "DEFAULT"]
Segments = Mapping[str, tuple[Constraint, ...]]

DEFAULT_STICKINESS = "targetingKey"
CONTROL_BAND_MAX_WEIGHT = BUCKETS // 2
# An experiment's arms: the baseline and up to three candidates (client/README.md, "Engine").
MAX_EXPERIMENT_ARMS = 4


# A NamedTuple rather than a frozen dataclass: immutable too (resolutions without a bucket are
# built once and shared), and about three times cheaper to construct on the split path.
class Resolution(NamedTuple):
    value_version: int | None
    reason: Reason
    variant: str | None
    """`v<version>`, or None when there is no value."""
    arm: str | None = None
    """`candidate` / `control` / `baseline` in a rollout, the arm's name in an experiment;
    None when the unit is not counted in a split."""
    split_id: str | None = None
    rule_index: int | None = None
    bucket: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    constraints: tuple[Constraint, ...]
    """The rule's own constraints followed by its segments' constraints, all AND-ed."""
    segments: tuple[str, ...]
    version: int
    resolution: Resolution


@dataclass(frozen=True, slots=True, eq=False)
class Rollout:
    id: str
    seed: str
    candidate: int
    weight: int
    baseline: int
    control_end: int = field(init=False)
    candidate_variant: str = field(init=False)
    baseline_variant: str = field(init=False)

    def __post_init__(self) -> None:
        # [weight, control_end) is the control arm: as wide as the candidate's share, if it fits.
        control_end = 2 * self.weight if self.weight <= CONTROL_BAND_MAX_WEIGHT else self.weight
        object.__setattr__(self, "control_end", control_end)
        object.__setattr__(self, "candidate_variant", variant_of(self.candidate))
        object.__setattr__(self, "baseline_variant", variant_of(self.baseline))

    def assign(self, unit_bucket: int) -> Resolution:
        if unit_bucket < self.weight:
            version, variant, arm = self.candidate, self.candidate_variant, "candidate"
        else:
            version, variant = self.baseline, self.baseline_variant
            arm = "control" if unit_bucket < self.control_end else "baseline"
        return Resolution(version, "SPLIT", variant, arm, self.id, None, unit_bucket)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    version: int
    weight: int


@dataclass(frozen=True, slots=True, eq=False)
class Experiment:
    id: str
    seed: str
    arms: tuple[Arm, ...]
    baseline: int
    _bands: tuple[tuple[int, Arm, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        bands = []
        end = 0
        for arm in self.arms:
            end += arm.weight
            bands.append((end, arm, variant_of(arm.version)))
        object.__setattr__(self, "_bands", tuple(bands))

    def assign(self, unit_bucket: int) -> Resolution:
        for end, arm, variant in self._bands:
            if unit_bucket < end:
                return Resolution(arm.version, "SPLIT", variant, arm.name, self.id, None, unit_bucket)
        return Resolution(self.baseline, "DEFAULT", variant_of(self.baseline), bucket=unit_bucket)


@dataclass(frozen=True, slots=True, eq=False)
class FlagDefinition:
    key: str
    enabled: bool
    stickiness: str
    version: int | None
    """The serving (baseline) version; None only while the flag is disabled."""
    rules: tuple[Rule, ...] = ()
    rollout: Rollout | None = None
    experiment: Experiment | None = None
    _split: Rollout | Experiment | None = field(init=False)
    _fixed: Resolution = field(init=False)
    _uncounted: Resolution = field(init=False)

    def __post_init__(self) -> None:
        if self.rollout is not None and self.experiment is not None:
            raise DefinitionError("experiment", "a flag has at most one active rollout or experiment")
        if self.enabled and self.version is None:
            raise DefinitionError("version", "an enabled flag needs a serving version")
        variant = None if self.version is None else variant_of(self.version)
        object.__setattr__(self, "_split", self.experiment or self.rollout)
        object.__setattr__(
            self,
            "_fixed",
            Resolution(self.version, "STATIC", variant)
            if self.enabled
            else Resolution(None, "DISABLED", None),
        )
        object.__setattr__(self, "_uncounted", Resolution(self.version, "DEFAULT", variant))


def variant_of(version: int) -> str:
    return f"v{version}"


def resolve(flag: FlagDefinition, context: Context) -> Resolution:
    """Resolve `flag` for `context` (see the module docstring for the order)."""
    if not flag.enabled:
        return flag._fixed
    for rule in flag.rules:
        for constraint in rule.constraints:
            if not constraint.matches(context):
                break
        else:
            return rule.resolution
    split = flag._split
    if split is None:
        return flag._fixed
    unit = unit_of(context, flag.stickiness)
    if unit is None:
        return flag._uncounted
    try:
        unit_bucket = bucket(split.seed, unit)
    except UnicodeEncodeError:
        return flag._uncounted
    return split.assign(unit_bucket)


def unit_of(context: Context, stickiness: str) -> str | None:
    """The unit to bucket: the stickiness field as text; missing, empty or unreadable -> None."""
    return as_text(lookup(context, stickiness)) or None


def compile_segments(data: object, *, strict: bool = True) -> dict[str, tuple[Constraint, ...]]:
    """Compile a snapshot's segments: `{key: {"constraints": [...]}}`."""
    segments = read_object(data, "segments", DefinitionError)
    compiled = {}
    for key, segment in segments.items():
        path = join("segments", key)
        fields = read_object(segment, path, DefinitionError)
        compiled[key] = compile_constraints(
            fields.get("constraints", []), path=join(path, "constraints"), strict=strict
        )
    return compiled


def flag_from_dict(
    data: object,
    *,
    segments: Segments | None = None,
    strict: bool = True,
    compiled_rules: tuple[Rule, ...] | None = None,
) -> FlagDefinition:
    """Compile a flag definition from its JSON shape (client/README.md, "Engine").

    Raises DefinitionError (ConstraintError for constraints) with the path of the first
    invalid field. With `strict=False`, unusable constraints and unknown segment references
    make their rule never match instead of raising; structural errors still raise.
    `compiled_rules`: the flag's rules compiled before from identical rules and segments, taken
    instead of reading `rules` (compiling constraints is most of a flag's cost).
    """
    fields = read_object(data, "", DefinitionError)
    key = read_name(fields.get("key"), "key", DefinitionError)
    enabled = read_bool(fields.get("enabled"), "enabled", DefinitionError)
    stickiness = read_name(fields.get("stickiness", DEFAULT_STICKINESS), "stickiness", DefinitionError)
    raw_version = fields.get("version")
    version = None if raw_version is None else _read_version(raw_version, "version")
    rules = (
        compiled_rules
        if compiled_rules is not None
        else tuple(
            _read_rule(rule, join("rules", index), index, segments or {}, strict=strict)
            for index, rule in enumerate(read_list(fields.get("rules", []), "rules", DefinitionError))
        )
    )
    rollout = experiment = None
    if fields.get("rollout") is not None:
        rollout = _read_rollout(fields["rollout"], version)
    if fields.get("experiment") is not None:
        experiment = _read_experiment(fields["experiment"], version)
    return FlagDefinition(
        key=key,
        enabled=enabled,
        stickiness=stickiness,
        version=version,
        rules=rules,
        rollout=rollout,
        experiment=experiment,
    )


def _read_version(value: object, path: str) -> int:
    return read_int(value, path, DefinitionError, low=1, high=None)


def _read_weight(value: object, path: str) -> int:
    return read_int(value, path, DefinitionError, low=0, high=BUCKETS)


def _require_baseline(baseline: int | None, path: str) -> int:
    if baseline is None:
        raise DefinitionError(path, "a split needs a serving version to fall back to")
    return baseline


def _read_rule(data: object, path: str, index: int, segments: Segments, *, strict: bool) -> Rule:
    fields = read_object(data, path, DefinitionError)
    constraints = compile_constraints(
        fields.get("constraints", []), path=join(path, "constraints"), strict=strict
    )
    refs_path = join(path, "segments")
    refs = tuple(
        read_name(ref, join(refs_path, ref_index), DefinitionError)
        for ref_index, ref in enumerate(read_list(fields.get("segments", []), refs_path, DefinitionError))
    )
    for ref_index, ref in enumerate(refs):
        if ref in segments:
            constraints += segments[ref]
        elif strict:
            raise DefinitionError(join(refs_path, ref_index), f"unknown segment {ref!r}")
        else:
            constraints += (UNUSABLE,)
    version = _read_version(fields.get("version"), join(path, "version"))
    return Rule(
        constraints=constraints,
        segments=refs,
        version=version,
        resolution=Resolution(version, "TARGETING_MATCH", variant_of(version), rule_index=index),
    )


def _read_rollout(data: object, baseline: int | None) -> Rollout:
    fields = read_object(data, "rollout", DefinitionError)
    candidate = _read_version(fields.get("candidate"), "rollout.candidate")
    if candidate == baseline:
        raise DefinitionError("rollout.candidate", "must differ from the serving version")
    return Rollout(
        id=read_name(fields.get("id"), "rollout.id", DefinitionError),
        seed=read_name(fields.get("seed"), "rollout.seed", DefinitionError),
        candidate=candidate,
        weight=_read_weight(fields.get("weight"), "rollout.weight"),
        baseline=_require_baseline(baseline, "rollout"),
    )


def _read_experiment(data: object, baseline: int | None) -> Experiment:
    fields = read_object(data, "experiment", DefinitionError)
    arms = []
    names: set[str] = set()
    for index, item in enumerate(read_list(fields.get("arms"), "experiment.arms", DefinitionError)):
        path = join("experiment.arms", index)
        arm_fields = read_object(item, path, DefinitionError)
        name = read_name(arm_fields.get("name"), join(path, "name"), DefinitionError)
        if name in names:
            raise DefinitionError(join(path, "name"), f"duplicate arm {name!r}")
        names.add(name)
        arms.append(
            Arm(
                name=name,
                version=_read_version(arm_fields.get("version"), join(path, "version")),
                weight=_read_weight(arm_fields.get("weight"), join(path, "weight")),
            )
        )
    if not arms:
        raise DefinitionError("experiment.arms", "needs at least one arm")
    if len(arms) > MAX_EXPERIMENT_ARMS:
        raise DefinitionError("experiment.arms", f"has more than {MAX_EXPERIMENT_ARMS} arms")
    if sum(arm.weight for arm in arms) > BUCKETS:
        raise DefinitionError("experiment.arms", f"weights add up to more than {BUCKETS}")
    return Experiment(
        id=read_name(fields.get("id"), "experiment.id", DefinitionError),
        seed=read_name(fields.get("seed"), "experiment.seed", DefinitionError),
        arms=tuple(arms),
        baseline=_require_baseline(baseline, "experiment"),
    )
