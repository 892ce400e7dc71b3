"""Every request of a run, rendered by `flagstaff.render` (the one renderer) from the run's content.

A case contributes its conversation (`input.messages`); everything else, cache_control included,
comes from the config as it sets it. A run whose content cannot be rendered for some case is
refused (or failed) before any call: `render_errors` names each case that cannot be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evals.models import EvalCase, EvalRun
from evals.services.runs.scoring import Scoring
from flagstaff.render import RenderedRequest, RenderError, render_request

MAX_ERRORS_SHOWN = 20


def run_content(run: EvalRun) -> Mapping[str, Any]:
    if run.config_version is not None:
        return run.config_version.content
    return run.draft_content or {}


def render_case(content: Mapping[str, Any], case_input: Mapping[str, Any] | None) -> RenderedRequest:
    """The request for a case (or a live sample) whose `input` is `case_input`."""
    messages = (case_input or {}).get("messages")
    if not isinstance(messages, list) or not messages:
        raise RenderError("the case has no input messages")
    return render_request(content, messages=messages)


def render_errors(
    content: Mapping[str, Any], cases: Iterable[tuple[int, Mapping[str, Any] | None]]
) -> list[dict[str, str]]:
    """`{path, message}` for the first cases, given as (position, input), that cannot be rendered
    (empty when all can). Positions and inputs only: a run's worker checks every case of the run
    before its first call, and building model instances for them cost more than rendering."""
    errors = []
    for position, case_input in cases:
        try:
            render_case(content, case_input)
        except (RenderError, KeyError, TypeError) as error:
            errors.append({"path": f"cases[{position}]", "message": str(error)})
            if len(errors) == MAX_ERRORS_SHOWN:
                break
    return errors


@dataclass(frozen=True)
class RunRequests:
    """What the run's threads need: the content to render and the scorer set."""

    content: Mapping[str, Any]
    scoring: Scoring

    def for_case(self, case: EvalCase) -> RenderedRequest:
        return render_case(self.content, case.input)


def batch_params(request: RenderedRequest) -> dict[str, Any]:
    """A rendered request as the `params` of a batch request (headers go on the batch itself)."""
    params = {k: v for k, v in request.kwargs.items() if k not in ("extra_headers", "extra_body", "betas")}
    return params | dict(request.kwargs.get("extra_body") or {})
