"""The webhook events of an experiment's pause and end (`experiment-paused`, `-concluded`,
`-aborted`, `-superseded`), queued in the transition's transaction like the rollouts' events."""

from __future__ import annotations

from typing import Any

from rollouts.models import Experiment, ExperimentState
from telemetry.models.incidents import WebhookEvent
from telemetry.services.webhooks import enqueue_event

EVENTS = {
    ExperimentState.PAUSED: WebhookEvent.EXPERIMENT_PAUSED,
    ExperimentState.CONCLUDED: WebhookEvent.EXPERIMENT_CONCLUDED,
    ExperimentState.ABORTED: WebhookEvent.EXPERIMENT_ABORTED,
    ExperimentState.SUPERSEDED: WebhookEvent.EXPERIMENT_SUPERSEDED,
}


def experiment_payload(experiment: Experiment) -> dict[str, Any]:
    """What an experiment's webhooks say: its arms, its state, and the winner once concluded."""
    return {
        "id": experiment.pk,
        "flag": experiment.flag.key,
        "environment": experiment.environment.key,
        "baseline": experiment.baseline.number,
        "arms": [
            {"name": arm.name, "version": arm.version.number, "weight": arm.weight}
            for arm in experiment.arms.select_related("version").order_by("index")
        ],
        "state": experiment.state,
        "pause_reason": experiment.pause_reason,
        "winner": experiment.winner,
        "version": experiment.version,
    }


def announce(experiment: Experiment, *, reason: str) -> None:
    """Queue the event of the state `experiment` just moved to, if it has one."""
    event = EVENTS.get(ExperimentState(experiment.state))
    if event is not None:
        enqueue_event(event=event, payload={**experiment_payload(experiment), "reason": reason})
