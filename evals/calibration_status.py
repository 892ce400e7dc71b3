"""A judge version's standing in words: acting (its verdicts count) or advisory (shown only)."""

from __future__ import annotations

from dataclasses import dataclass

from evals.agreement import ACTING_MIN_KAPPA, ACTING_MIN_LABELS, is_acting
from evals.models import JudgeCalibration
from flags.models import ConfigVersion


@dataclass(frozen=True)
class JudgeStatus:
    version: ConfigVersion
    calibration: JudgeCalibration | None
    acting: bool
    words: str


def judge_status(version: ConfigVersion) -> JudgeStatus:
    """Whether the version may pass a gate or drive a decision, and why, from its latest calibration."""
    calibration = JudgeCalibration.objects.latest_for(version.pk)
    if calibration is None:
        words = (
            "Advisory: not calibrated yet. Its verdicts are shown but cannot pass a gate or drive a rollout."
        )
        return JudgeStatus(version, None, False, words)
    acting = is_acting(kappa=calibration.kappa, n_labels=calibration.n_labels)
    kappa = "undefined" if calibration.kappa is None else f"{calibration.kappa:.2f}"
    if acting:
        words = (
            f"Acting: agrees with people at κ {kappa} on {calibration.n_labels} labels, "
            "so its verdicts can pass a gate and drive rollouts."
        )
    elif calibration.n_labels < ACTING_MIN_LABELS:
        words = (
            f"Advisory: {calibration.n_labels} of the {ACTING_MIN_LABELS} labels needed (κ {kappa}). "
            "Its verdicts are shown but cannot pass a gate or drive a rollout."
        )
    else:
        words = (
            f"Advisory: κ {kappa} is below {ACTING_MIN_KAPPA} (agreement with people is too weak). "
            "Its verdicts are shown but cannot pass a gate or drive a rollout."
        )
    return JudgeStatus(version, calibration, acting, words)
