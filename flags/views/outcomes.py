"""What users get, in words, per environment: the flag page's and the flag list's sentence.

The parts come from `flagstaff.engine.outcomes` over the definition `resolve` evaluates
(`flags.targeting.compiled_flag`); only the words are added here (constraints as phrases, the
rule's number, the split's percentages).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flags import split_owners
from flags.models import ConfigVersion, Environment, Flag, FlagState, Segment, Split, load_arms
from flags.targeting import compiled_flag
from flags.views.constraints import describe_constraint
from flagstaff.engine import BUCKETS, Outcome, outcomes

CODE_DEFAULT = "services use their code default"


@dataclass(frozen=True, slots=True)
class Part:
    """One clause: who (`audience`) gets what (`serves`), and from which part (`source`)."""

    audience: str
    serves: str
    source: str


@dataclass(frozen=True, slots=True)
class WhatUsersGet:
    environment: str
    parts: tuple[Part, ...]

    @property
    def sentence(self) -> str:
        clauses = [
            f"{part.audience} → {part.serves}" if part.audience else part.serves for part in self.parts
        ]
        return f"{self.environment}: " + "; ".join(clauses)


def _percent(weight: int) -> str:
    return f"{weight * 100 / BUCKETS:g} %"


def _conditions(rule: dict[str, Any]) -> str:
    words = [describe_constraint(c) for c in rule.get("constraints") or [] if isinstance(c, dict)]
    words += [f"in segment {key}" for key in rule.get("segments") or []]
    return " and ".join(words)


def _part(outcome: Outcome, rules: list[Any], reached_by_rule: bool, split_owner: str = "") -> Part:
    rest = "everyone else" if reached_by_rule else "everyone"
    if outcome.kind == "rule":
        assert outcome.index is not None
        rule = rules[outcome.index] if outcome.index < len(rules) else {}
        conditions = _conditions(rule)
        if outcome.catch_all:
            # Conditions here are segments without constraints, which match every context.
            audience = f"{rest} ({conditions}, which has no constraints)" if conditions else rest
        else:
            audience = conditions
        return Part(audience, f"v{outcome.version} (rule {outcome.index + 1})", "rule")
    if outcome.kind == "split" and outcome.experiment:
        # An experiment's arms have names people chose; a unit outside them gets the baseline.
        shares = ", ".join(
            f"v{share.version}"
            + (f" ({share.arm})" if share.arm != "outside" else "")
            + f" to {_percent(share.weight)}"
            for share in outcome.shares
        )
        return Part(rest, f"{shares} ({split_owner or 'experiment'})", "split")
    if outcome.kind == "split":
        shares = ", ".join(f"v{share.version} to {_percent(share.weight)}" for share in outcome.shares)
        return Part(rest, f"{shares} ({split_owner or 'split'})", "split")
    return Part(rest, f"v{outcome.version}", "serving")


def what_users_get(
    *,
    flag: Flag,
    environment: Environment,
    state: FlagState | None,
    split: Split | None,
    segments: dict[str, Any],
    version_hashes: Mapping[int, str] | None = None,
    split_owner: str = "",
) -> WhatUsersGet:
    """The sentence for one environment; `state.serving_version` loaded, `segments` {key: constraints},
    `split_owner` what moves the split in words (`flags.split_owners`)."""
    if state is None or state.serving_version_id is None:
        return WhatUsersGet(environment.key, (Part("", f"not published, {CODE_DEFAULT}", "disabled"),))
    if flag.is_archived:
        return WhatUsersGet(environment.key, (Part("", f"archived, {CODE_DEFAULT}", "disabled"),))
    compiled = compiled_flag(
        flag=flag, state=state, split=split, segments=segments, version_hashes=version_hashes
    )
    parts = outcomes(compiled)
    if parts[0].kind == "disabled":
        return WhatUsersGet(environment.key, (Part("", f"disabled, {CODE_DEFAULT}", "disabled"),))
    rules = state.rules if isinstance(state.rules, list) else []
    worded = tuple(
        _part(outcome, rules, reached_by_rule=index > 0, split_owner=split_owner)
        for index, outcome in enumerate(parts)
    )
    return WhatUsersGet(environment.key, worded)


def all_segments() -> dict[str, Any]:
    return dict(Segment.objects.values_list("key", "constraints"))


def for_flags(flags: Iterable[Flag]) -> dict[int, list[WhatUsersGet]]:
    """Each flag's sentences, one per environment it has a state in (states prefetched with
    their environment and serving version, as `Flag.objects.with_states()` does), in four queries
    and those of the split describers."""
    flags = list(flags)
    splits = list(Split.objects.active().select_related("candidate").filter(flag__in=flags))
    load_arms(splits)
    split_of = {(split.flag_id, split.environment_id): split for split in splits}
    owners = split_owners.describe(splits)
    hashes: dict[int, dict[int, str]] = defaultdict(dict)
    for flag_id, number, content_hash in ConfigVersion.objects.filter(flag__in=flags).values_list(
        "flag_id", "number", "content_hash"
    ):
        hashes[flag_id][number] = content_hash
    segments = all_segments()
    return {
        flag.pk: [
            what_users_get(
                flag=flag,
                environment=state.environment,
                state=state,
                split=(split := split_of.get((flag.pk, state.environment_id))),
                segments=segments,
                version_hashes=hashes[flag.pk],
                split_owner=owners.get(split.pk, "") if split else "",
            )
            for state in flag.states.all()
        ]
        for flag in flags
    }
