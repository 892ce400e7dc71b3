"""The lookups every rollouts view uses: a row by its id, or a 404 with a stable code."""

from __future__ import annotations

from controlplane.errors import NotFound
from rollouts.models import Experiment, Rollout


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
