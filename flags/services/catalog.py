"""The model catalog: storing models and prices, and refreshing them from the Models API."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anthropic
from django.db import transaction
from django.dispatch import Signal

from controlplane import audit
from controlplane.anthropic_client import make_client
from controlplane.audit import Actor, AuditTarget
from controlplane.errors import DomainError
from flags.catalog import fetch_models, store_models
from flags.validation import ModelInfo

logger = logging.getLogger(__name__)

# Sent after the commit of a sync that changed the catalog, with `changes` (ids added, changed,
# repriced): apps above flags (the deprecation watch) re-read lifecycles and retirement dates.
catalog_synced = Signal()


@transaction.atomic
def sync_model_catalog(*, models: Sequence[ModelInfo], source: str, actor: Actor) -> dict[str, list[str]]:
    """Upsert catalog models (and their prices when given); audit what changed."""
    changes = store_models(models, source=source)
    if any(changes.values()):
        audit.record(
            actor=actor,
            action="catalog.synced",
            target=AuditTarget(type="flags.modelcatalog", id=source, label=f"model catalog ({source})"),
            changes={"source": source, **changes},
        )
        # robust: a listener's failure must not undo or fail the sync that already committed.
        transaction.on_commit(
            lambda: catalog_synced.send_robust(sender=sync_model_catalog, changes=changes), robust=True
        )
    logger.info("model catalog synced", extra={"source": source, **{k: len(v) for k, v in changes.items()}})
    return changes


class ModelsApiFailed(DomainError):
    status_code = 502
    code = "models_api_failed"


def refresh_model_catalog(*, actor: Actor) -> dict[str, list[str]]:
    """Read every model from the Models API and store what changed.

    The network call happens before the transaction, so no lock is held while waiting on it.
    """
    try:
        models = fetch_models(make_client())
    except anthropic.APIStatusError as exc:
        raise ModelsApiFailed(
            f"The Models API answered {exc.status_code}: {exc.message}", extra={"request_id": exc.request_id}
        ) from exc
    except anthropic.APIConnectionError as exc:
        raise ModelsApiFailed(f"The Models API could not be reached: {exc}") from exc
    return sync_model_catalog(models=models, source="models_api", actor=actor)
