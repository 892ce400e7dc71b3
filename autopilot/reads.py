"""Read model of the migrations page and API: every migration with its runway and next step,
and the flags still exposed to a deprecated or retiring model with no migration yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from autopilot import drafting
from autopilot.models import OPEN_STATES, Migration, MigrationState
from evals.models import RunState
from flags.catalog import current_catalog
from flags.models import FlagState
from flags.validation import ModelInfo
from rollouts.models import RolloutState


def runway(model_id: str, catalog: dict[str, ModelInfo], *, today: date) -> int | None:
    """Days to the model's retirement as the catalog says now (it can be revised)."""
    model = catalog.get(model_id)
    return drafting.runway_days(model, today=today) if model is not None else None


def next_step(migration: Migration) -> str:
    """What happens next, in words a product owner reads."""
    state = migration.state
    if state == MigrationState.GATE_RUNNING:
        run = migration.run
        progress = f" ({run.cases_done} of {run.cases_total} cases)" if run is not None else ""
        if run is not None and run.state == RunState.PAUSED:
            return f"The eval run is paused: {run.reason} Resume it from its page."
        return f"Wait: the eval gate is running{progress}; the rollout is proposed when it passes."
    if state == MigrationState.GATE_FAILED:
        return (
            f"A person reviews the failed cases: edit the draft v{migration.draft_version.number} and "
            "draft again, or have an Approver override the verdict and re-run the gate."
        )
    if state == MigrationState.GATE_ERROR:
        return "Fix what stopped the gate (see the detail), then re-run the gate."
    rollout = migration.rollout
    assert rollout is not None
    if rollout.state in (RolloutState.DRAFT, RolloutState.READY):
        return f"A person starts rollout #{rollout.pk} from its page; nothing reaches traffic until then."
    if rollout.state in (RolloutState.RUNNING, RolloutState.PAUSED):
        return f"Rollout #{rollout.pk} is {rollout.get_state_display().lower()}: watch it on its page."
    if rollout.state == RolloutState.PROMOTED:
        return f"Done: v{migration.draft_version.number} serves '{migration.environment.key}'."
    return f"Rollout #{rollout.pk} ended {rollout.get_state_display().lower()}: draft the migration again."


@dataclass(frozen=True, slots=True)
class MigrationRow:
    migration: Migration
    runway_days: int | None
    next_step: str


def migration_rows(migrations: list[Migration], *, today: date | None = None) -> list[MigrationRow]:
    catalog = current_catalog()
    today = today or timezone.now().date()
    return [MigrationRow(m, runway(m.from_model, catalog, today=today), next_step(m)) for m in migrations]


@dataclass(frozen=True, slots=True)
class Exposure:
    state: FlagState
    model: ModelInfo
    runway_days: int | None
    replacement: str


def unmigrated_exposures(*, today: date | None = None) -> list[Exposure]:
    """Every flag × environment serving a version on an exposed model (its own or a subagent's)
    with no migration under way or proposed, soonest retirement first."""
    catalog = current_catalog()
    today = today or timezone.now().date()
    busy = set(
        Migration.objects.filter(
            state__in=(*OPEN_STATES, MigrationState.ROLLOUT_DRAFTED),
        ).values_list("flag_id", "environment_id")
    )
    found = []
    states = FlagState.objects.select_related("flag", "environment", "serving_version").filter(
        serving_version__isnull=False, flag__archived_at__isnull=True
    )
    for state in states.order_by("flag__key", "environment__key"):
        assert state.serving_version is not None
        model = drafting.exposed_model(state.serving_version.content, catalog)
        if model is None or (state.flag_id, state.environment_id) in busy:
            continue
        found.append(
            Exposure(state, model, drafting.runway_days(model, today=today), model.replacement or "")
        )
    return sorted(found, key=lambda e: (e.runway_days is None, e.runway_days or 0))
