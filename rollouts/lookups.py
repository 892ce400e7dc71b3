"""The lookups every rollouts view uses: a row by its id, or a 404 with a stable code."""

from __future__ import annotations

from typing import Any

from controlplane.errors import NotFound
from rollouts.models import Experiment, Rollout

# A rollout or an experiment: the two pages the checklist and the controls sit on, their URLs
# naming which by a `kind` ("rollout" or "experiment").
Subject = Any
SUBJECT_PAGES = {"rollout": "rollouts:detail", "experiment": "rollouts:experiment"}


def get_rollout(pk: int) -> Rollout:
    rollout = (
        Rollout.objects.select_related("flag", "environment", "baseline", "candidate").filter(pk=pk).first()
    )
    if rollout is None:
        raise NotFound(f"No rollout {pk}.")
    return rollout


def get_experiment(pk: int) -> Experiment:
    experiment = (
        Experiment.objects.select_related("flag", "environment", "baseline", "split", "canary")
        .filter(pk=pk)
        .first()
    )
    if experiment is None:
        raise NotFound(f"No experiment {pk}.")
    return experiment


def get_subject(kind: str, pk: int) -> Subject:
    return get_rollout(pk) if kind == "rollout" else get_experiment(pk)


def kind_of(subject: Subject) -> str:
    return "rollout" if isinstance(subject, Rollout) else "experiment"
