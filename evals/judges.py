"""Which judge version a scorer spec runs, and the scoring context that carries it.

An `llm_judge` spec names its judge flag (`params.judge`) and may pin a version
(`params.version`); unpinned, it runs the judge's latest version. The calibration of that
version decides whether its verdicts act (see evals/agreement.py and calibration_status.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from evals.scorers import Context, Judge, ScorerSpec
from flags.models import ConfigVersion, Flag, Surface

JUDGE_SCORER = "llm_judge"


def judge_issues(specs: Sequence[ScorerSpec], *, path: str = "scorers") -> list[dict[str, str]]:
    """{path, message} for each judge spec whose judge flag or pinned version does not exist."""
    issues = []
    for index, spec in enumerate(specs):
        if spec.name != JUDGE_SCORER:
            continue
        key = str(spec.params["judge"])
        if not Flag.objects.filter(key=key, surface=Surface.JUDGE).exists():
            issues.append(
                {"path": f"{path}[{index}].params.judge", "message": f"No judge flag with key '{key}'."}
            )
        elif (
            "version" in spec.params
            and not ConfigVersion.objects.filter(flag__key=key, number=spec.params["version"]).exists()
        ):
            issues.append(
                {"path": f"{path}[{index}].params.version", "message": f"Judge '{key}' has no such version."}
            )
    return issues


def judge_version_for(spec: ScorerSpec) -> ConfigVersion | None:
    versions = ConfigVersion.objects.filter(flag__key=spec.params["judge"], flag__surface=Surface.JUDGE)
    if "version" in spec.params:
        return versions.filter(number=spec.params["version"]).first()
    return versions.order_by("-number").first()


def scoring_context(specs: Sequence[ScorerSpec], *, max_iterations: int | None = None) -> Context:
    """The context for scoring with `specs`; builds an API client only when a judge is among them."""
    judges: dict[str, Judge] = {}
    judge_specs = [spec for spec in specs if spec.name == JUDGE_SCORER]
    if judge_specs:
        from controlplane.anthropic_client import make_client
        from telemetry.prices import cached_price_table

        client, prices, today = make_client(), cached_price_table(), timezone.now().date()
        for spec in judge_specs:
            version = judge_version_for(spec)
            if version is not None:
                judges[str(spec.params["judge"])] = Judge(
                    content=version.content, client=client, prices=prices, today=today, version_id=version.pk
                )
    return Context(judges=judges, max_iterations=max_iterations)
