"""Background work of the evals app; each task is thin and names its idempotency key."""

from __future__ import annotations

from celery import shared_task

from controlplane.audit import Actor
from evals.services import calibration
from flags.models import ConfigVersion


@shared_task(name="evals.calibrate_judge", acks_late=True, time_limit=3600, soft_time_limit=3540)
def calibrate_judge(judge_version_id: int, actor_name: str) -> int:
    """Judge every label the version has not judged, then store its calibration.

    Idempotency key: (judge version, label), unique on JudgeVerdict; a rerun pays only for
    labels without a verdict and stores one more calibration row computed from the same data.
    """
    version = ConfigVersion.objects.select_related("flag").get(pk=judge_version_id)
    result = calibration.judge_labels(judge_version=version, actor=Actor.system(actor_name))
    return result.pk
