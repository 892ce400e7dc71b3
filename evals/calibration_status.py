"""A judge version's standing in words: acting (its verdicts count) or advisory (shown only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from evals.agreement import ACTING_MIN_KAPPA, ACTING_MIN_LABELS, is_acting
from evals.models import JudgeCalibration, JudgeLabel, JudgeVerdict
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


@dataclass(frozen=True)
class CalibrationProgress:
    """A calibration being watched: how many labels the judge version has judged so far, and
    whether a calibration was stored since it was asked for."""

    version: ConfigVersion
    judged: int
    labels: int
    finished: JudgeCalibration | None

    @property
    def percent(self) -> int:
        return 100 if self.finished or not self.labels else min(100, self.judged * 100 // self.labels)


def calibration_progress(version: ConfigVersion, *, since: datetime) -> CalibrationProgress:
    finished = (
        JudgeCalibration.objects.filter(judge_version=version, computed_at__gte=since)
        .order_by("-computed_at")
        .first()
    )
    return CalibrationProgress(
        version=version,
        judged=JudgeVerdict.objects.filter(judge_version=version).count(),
        labels=JudgeLabel.objects.filter(judge=version.flag).count(),
        finished=finished,
    )
