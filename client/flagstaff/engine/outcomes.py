"""What a compiled flag serves, part by part, in the order `resolve` tries the parts.

The flag page says in words what users get ("production: enterprise -> v2 (rule 1); everyone
else: 90 % v1, 10 % v2 (split)"). The words are drawn from this walk over the same compiled
`FlagDefinition` that `resolve` evaluates, so they cannot tell a different story: a disabled
flag serves nothing, a rule without conditions ends the walk (nothing after it is reached),
and the split's shares are its weights in buckets.
"""

from dataclasses import dataclass
from typing import Literal

from flagstaff.engine.bucketing import BUCKETS
from flagstaff.engine.resolve import FlagDefinition

OutcomeKind = Literal["disabled", "rule", "split", "static"]


@dataclass(frozen=True, slots=True)
class Share:
    version: int
    weight: int
    """Buckets of BUCKETS (basis points)."""
    arm: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One part of the resolution: a rule (`index`), the split (`shares`), or the serving version."""

    kind: OutcomeKind
    version: int | None = None
    index: int | None = None
    catch_all: bool = False
    """A rule without conditions: every context that reaches it stops here."""
    shares: tuple[Share, ...] = ()
    experiment: bool = False
    """The split is an experiment's arms (named by people), not a canary's candidate and baseline."""


def outcomes(flag: FlagDefinition) -> tuple[Outcome, ...]:
    """The parts a context can end in, in resolution order; unreachable parts are left out."""
    if not flag.enabled:
        return (Outcome("disabled"),)
    parts: list[Outcome] = []
    for index, rule in enumerate(flag.rules):
        catch_all = not rule.constraints
        parts.append(Outcome("rule", version=rule.version, index=index, catch_all=catch_all))
        if catch_all:
            return tuple(parts)
    if flag.rollout is not None:
        rollout = flag.rollout
        shares = (
            Share(rollout.baseline, BUCKETS - rollout.weight, "baseline"),
            Share(rollout.candidate, rollout.weight, "candidate"),
        )
        parts.append(Outcome("split", shares=tuple(share for share in shares if share.weight)))
    elif flag.experiment is not None:
        arms = tuple(Share(arm.version, arm.weight, arm.name) for arm in flag.experiment.arms if arm.weight)
        rest = BUCKETS - sum(arm.weight for arm in flag.experiment.arms)
        outside = (Share(flag.experiment.baseline, rest, "outside"),) if rest else ()
        parts.append(Outcome("split", shares=arms + outside, experiment=True))
    else:
        parts.append(Outcome("static", version=flag.version))
    return tuple(parts)
