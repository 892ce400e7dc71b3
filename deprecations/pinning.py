"""The date-pinning check: production versions of pre-4.6 models should name the dated id.

Models before Opus 4.6 have a dated snapshot id and an alias (`claude-sonnet-4-5` ->
`claude-sonnet-4-5-20250929`); an alias can move to a newer snapshot, so what production serves
could change without a new version. Later models have one fixed id (the reference on the
Anthropic API, section 4.1). Version validation warns about an alias (`model_alias_not_pinned`,
flags/validation/rules.py); this module says where production uses one, for the deploy
checklist (`date_pinning`) and the deprecations page (`unpinned_in_production`).
"""

from __future__ import annotations

from dataclasses import dataclass

from deprecations.exposures import Exposure, exposures
from flags.catalog import current_catalog
from flags.models import Environment, Flag
from flags.validation import ModelInfo, is_unpinned_alias, unpinned_alias_message


@dataclass(frozen=True, slots=True)
class UnpinnedAlias:
    exposure: Exposure
    pinned_id: str  # the dated id to write instead
    message: str

    def as_dict(self) -> dict[str, object]:
        return {**self.exposure.as_dict(), "pinned_id": self.pinned_id, "message": self.message}


def _alias_catalog() -> dict[str, ModelInfo]:
    """Only the aliases: an exposure found through this catalog names a model by its alias."""
    return {key: info for key, info in current_catalog().items() if is_unpinned_alias(key, info)}


def _unpinned(found: list[Exposure], catalog: dict[str, ModelInfo]) -> list[UnpinnedAlias]:
    return [
        UnpinnedAlias(e, e.model, unpinned_alias_message(e.used_as, catalog[e.used_as]))
        for e in found
        if e.used_as in catalog
    ]


def date_pinning(*, flag: Flag, environment: Environment) -> list[UnpinnedAlias]:
    """Every alias of a pre-4.6 model in what `flag` serves or is about to serve in
    `environment` (serving version, rules, splits, rollout and experiment candidates, and their
    subagents); empty when every model is named by its dated id. For the deploy checklist."""
    catalog = _alias_catalog()
    if not catalog:
        return []
    return _unpinned(exposures(catalog=catalog, flag=flag, environment=environment), catalog)


def unpinned_in_production() -> list[UnpinnedAlias]:
    """The aliases used in protected (production) environments, across every flag."""
    catalog = _alias_catalog()
    if not catalog:
        return []
    protected = set(Environment.objects.filter(protected=True).values_list("key", flat=True))
    found = [e for e in exposures(catalog=catalog) if e.environment in protected]
    return _unpinned(found, catalog)
