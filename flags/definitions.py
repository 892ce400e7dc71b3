"""A flag's definition in one environment, in the engine's JSON shape (docs/serving.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flags.models import ConfigVersion, Flag, FlagState, Split


def flag_definition(
    *,
    flag: Flag,
    state: FlagState,
    split: Split | None,
    version_hashes: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """The engine's flag dict plus `surface` and `versions` {"<number>": content hash}.

    `state.serving_version` and `split.candidate` should be loaded with select_related, and an
    experiment split's arms prefetched (`Split.objects.active()` does).
    `version_hashes` (number -> content hash) saves a query when the caller has them, as
    the snapshot compiler does for every flag at once; missing numbers are looked up.
    """
    serving = state.serving_version
    rules = [
        {
            "constraints": list(rule.get("constraints") or []),
            "segments": list(rule.get("segments") or []),
            "version": rule.get("version"),
        }
        for rule in state.rules
        if isinstance(rule, dict)
    ]
    rollout = experiment = None
    hashes: dict[int, str] = {}
    if serving is not None:
        hashes[serving.number] = serving.content_hash
    if split is not None and split.is_experiment:
        arms = list(split.arms.all())
        experiment = {
            "id": split.split_id,
            "seed": split.seed,
            "arms": [{"name": arm.name, "version": arm.version.number, "weight": arm.weight} for arm in arms],
        }
        hashes.update({arm.version.number: arm.version.content_hash for arm in arms})
    elif split is not None:
        assert split.candidate is not None
        rollout = {
            "id": split.split_id,
            "seed": split.seed,
            "candidate": split.candidate.number,
            "weight": split.weight,
        }
        hashes[split.candidate.number] = split.candidate.content_hash
    wanted = {rule["version"] for rule in rules if isinstance(rule["version"], int)} - set(hashes)
    known = version_hashes or {}
    hashes.update({number: known[number] for number in wanted if number in known})
    missing = wanted - set(hashes)
    if missing:
        found = ConfigVersion.objects.filter(flag=flag, number__in=missing).values_list(
            "number", "content_hash"
        )
        hashes.update(found)
    return {
        "key": flag.key,
        "enabled": state.enabled,
        "version": serving.number if serving is not None else None,
        "stickiness": flag.stickiness,
        "surface": flag.surface,
        "rules": rules,
        "rollout": rollout,
        "experiment": experiment,
        "versions": {str(number): hashes[number] for number in sorted(hashes)},
    }


def usage_list(states: Sequence[FlagState]) -> list[dict[str, str]]:
    return [{"flag": state.flag.key, "environment": state.environment.key} for state in states]
