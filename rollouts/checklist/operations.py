"""The computed checklist items that read what rollout operations and the deprecation watch
keep: a recent successful rollback rehearsal, the quarterly Console usage review, and dated
model ids in production."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings

from flags.catalog import current_catalog, models_in
from flags.models import ConfigVersion
from flags.validation import ModelInfo, is_unpinned_alias
from rollouts.checklist.items import Subject, Verdict, computed, failed, not_applicable, passed
from rollouts.rehearsal_reads import latest_rehearsal
from telemetry.usage_review import last_usage_review


@computed("rollback_rehearsed", "A recent successful rollback rehearsal")
def rollback_rehearsed(subject: Subject) -> Verdict:
    days = settings.FLAGSTAFF_CHECKLIST_REHEARSAL_DAYS
    found = latest_rehearsal(
        flag=subject.flag, environment=subject.environment, passed=True, within=timedelta(days=days)
    )
    where = f"'{subject.flag.key}' in '{subject.environment.key}'"
    if found is None or found.finished_at is None:
        return failed(
            f"No successful rollback rehearsal of {where} in the last {days} days: run one from the "
            "flag's Rehearsals page."
        )
    age = (subject.now - found.finished_at).days
    return passed(f"Rollback of {where} rehearsed successfully {age} days ago (rehearsal {found.pk}).")


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


@computed("console_usage_reviewed", "Console usage export reviewed this quarter")
def console_usage_reviewed(subject: Subject) -> Verdict:
    review = last_usage_review()
    quarter = _quarter_start(subject.now.date())
    if review is None:
        return failed("No Console usage export was ever imported: import it on the Console usage page.")
    when = review.at.date()
    if when < quarter:
        return failed(
            f"The Console usage export was last reviewed on {when:%d %b %Y}, before this quarter "
            f"began ({quarter:%d %b %Y}): import this quarter's."
        )
    return passed(f"The Console usage export was reviewed on {when:%d %b %Y} by {review.by or 'someone'}.")


def _aliases(version: ConfigVersion, catalog: dict[str, ModelInfo]) -> list[str]:
    return [
        f"v{version.number} {path} '{model_id}' (pin '{catalog[model_id].id}')"
        for path, model_id in models_in(version.content)
        if model_id in catalog and is_unpinned_alias(model_id, catalog[model_id])
    ]


@computed("date_pinned", "Pre-4.6 models named by their dated id in production")
def date_pinned(subject: Subject) -> Verdict:
    if not subject.environment.protected:
        return not_applicable(f"'{subject.environment.key}' is not a protected environment.")
    catalog = current_catalog()
    aliases = [alias for version in subject.candidates for alias in _aliases(version, catalog)]
    if aliases:
        return failed("An alias can move to a newer snapshot under the version: " + "; ".join(aliases) + ".")
    return passed("Every model is named by its dated id, or has only one id.")
