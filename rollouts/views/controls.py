"""The controls block of the rollout and experiment pages: the verbs the API has (pause, resume,
promote, abort; conclude and the winner's canary for an experiment) as buttons for people.

One form per page: a reason (required in a protected environment) and a button per verb the
subject's state allows and the person's role grants, each posting to its own URL. The same
services as the API run them, through the approvals of four eyes where the environment asks for
them; what happened is said in words on the page it returns to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.text import capfirst, get_text_list
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, require_scope, ui_actor
from flags.models import Approval
from flags.services import approvals
from flags.views.protected import missing_reason, reason_of
from flagstaff.engine import BUCKETS
from rollouts.lookups import SUBJECT_PAGES, Subject, get_subject, kind_of
from rollouts.models import ExperimentState, PauseReason, Rollout, RolloutState
from rollouts.services import experiments, lifecycle


@dataclass(frozen=True)
class Verb:
    name: str  # the URL's and the button's
    label: str
    scope: str
    help: str  # what it does, in words; {Promotion} (capitalised) and {winner} are filled in per subject
    danger: bool = False


PAUSE = Verb(
    "pause", "Pause", Scope.WRITE, "keep traffic as it is and stop the automatic decisions until you resume."
)
RESUME = Verb(
    "resume",
    "Resume",
    Scope.WRITE,
    "let the analysis decide again from its next tick, on everything since the stage began.",
)
PROMOTE = Verb("promote", "Promote", Scope.APPROVE, "{Promotion} now, without waiting for the analysis.")
ABORT = Verb(
    "abort",
    "Abort",
    Scope.WRITE,
    "give it up: the candidate leaves traffic and everyone gets the baseline; no incident is opened.",
    danger=True,
)
CONCLUDE = Verb(
    "conclude",
    "Conclude now",
    Scope.WRITE,
    "end the experiment on the data so far and mark the arms that pass; everyone gets the baseline.",
)
CANARY = Verb(
    "canary",
    "Start a canary of the winner",
    Scope.WRITE,
    "a new rollout of the winner, {winner}, with this experiment's guardrails (its gate applies).",
)

VERBS = {verb.name: verb for verb in (PAUSE, RESUME, PROMOTE, ABORT, CONCLUDE, CANARY)}

# What each state allows, in the order the buttons show. Start is the checklist's; Roll back has
# its own form on the rollout page.
ROLLOUT_VERBS: dict[str, tuple[Verb, ...]] = {
    RolloutState.DRAFT: (ABORT,),
    RolloutState.READY: (ABORT,),
    RolloutState.RUNNING: (PROMOTE, PAUSE, ABORT),
    RolloutState.PAUSED: (PROMOTE, RESUME, ABORT),
}
EXPERIMENT_VERBS: dict[str, tuple[Verb, ...]] = {
    ExperimentState.DRAFT: (ABORT,),
    ExperimentState.RUNNING: (CONCLUDE, PAUSE, ABORT),
    ExperimentState.PAUSED: (CONCLUDE, RESUME, ABORT),
}


def _rollout_promotion(rollout: Rollout) -> str:
    """Where Promote takes the rollout, in words."""
    following = rollout.stages.filter(index=rollout.stage_index + 1).first()
    if following is None or following.weight == BUCKETS:
        return f"make v{rollout.candidate.number} the serving version for everyone"
    return f"move to stage {following.index + 1}: v{rollout.candidate.number} to {following.weight / 100:g} %"


def _verbs(subject: Subject) -> tuple[Verb, ...]:
    if isinstance(subject, Rollout):
        return ROLLOUT_VERBS.get(subject.state, ())
    verbs = EXPERIMENT_VERBS.get(subject.state, ())
    if subject.state == ExperimentState.CONCLUDED and subject.winner and subject.canary_id is None:
        verbs = (CANARY,)
    return verbs


def controls_context(request: HtmxHttpRequest, subject: Subject) -> dict[str, Any]:
    """The one context key (`controls`) the block `rollouts/_controls.html` reads."""
    kind = kind_of(subject)
    scopes = scopes_for_user(request.user)
    verbs = _verbs(subject)
    allowed = [verb for verb in verbs if verb.scope in scopes]
    denied = [verb for verb in verbs if verb.scope not in scopes]
    waits_for_approver = (
        isinstance(subject, Rollout)
        and subject.state == RolloutState.PAUSED
        and subject.pause_reason == PauseReason.AWAITING_APPROVAL
    )
    promotion = _rollout_promotion(subject) if PROMOTE in allowed else ""
    winner = getattr(subject, "winner", "")
    return {
        "kind": kind,
        "subject": subject,
        "verbs": [(verb, verb.help.format(Promotion=capfirst(promotion), winner=winner)) for verb in allowed],
        "denied": _denied_in_words(denied),
        "promotion": promotion,
        "waits_for_approver": waits_for_approver,
        "protected": subject.environment.protected,
    }


ROLE_FOR = {Scope.WRITE: "the Editor role", Scope.APPROVE: "the Approver role"}


def _denied_in_words(denied: list[Verb]) -> str:
    """E.g. "Pause and Abort need the Editor role; Promote needs the Approver role." """
    parts = []
    for scope, role in ROLE_FOR.items():
        labels = [verb.label for verb in denied if verb.scope == scope]
        if labels:
            parts.append(f"{get_text_list(labels, 'and')} {'needs' if len(labels) == 1 else 'need'} {role}")
    return "; ".join(parts) + "." if parts else ""


# The service behind each control, called with the subject as the keyword its kind names
# (`rollout=` or `experiment=`), the actor and the reason, as the API's views call them.
SERVICES: dict[tuple[str, str], Callable[..., Any]] = {
    ("rollout", "pause"): lifecycle.pause_rollout,
    ("rollout", "resume"): lifecycle.resume_rollout,
    ("rollout", "promote"): lifecycle.promote_rollout,
    ("rollout", "abort"): lifecycle.abort_rollout,
    ("experiment", "pause"): experiments.pause_experiment,
    ("experiment", "resume"): experiments.resume_experiment,
    ("experiment", "abort"): experiments.abort_experiment,
    ("experiment", "conclude"): experiments.conclude_experiment,
    ("experiment", "canary"): experiments.start_canary,
}


DONE = {
    "pause": "Paused: traffic stays as it is and the analysis waits until you resume.",
    "resume": "Resumed: the analysis runs again at its next tick.",
    "abort": "Aborted: the candidate is off traffic and everyone gets the baseline.",
    "conclude": "Concluded on the data so far: everyone gets the baseline; the arms that pass are below.",
}


def _done(kind: str, verb: str, answer: Any) -> str:
    if verb == "promote":
        assert isinstance(answer, Rollout)
        if answer.state == RolloutState.PROMOTED:
            return f"Promoted: v{answer.candidate.number} serves everyone in '{answer.environment.key}'."
        return f"Promoted to stage {answer.stage_index + 1} of {answer.stages.count()}."
    if verb == "canary":
        return f"Started rollout #{answer.pk}, a canary of the winner."
    if kind == "experiment" and verb == "abort":
        return "Aborted: everyone gets the baseline again; no conclusion is drawn."
    return DONE[verb]


@login_required
@require_POST
def apply(request: HtmxHttpRequest, pk: int, kind: str, verb: str) -> HttpResponse:
    require_scope(request, VERBS[verb].scope)
    subject = get_subject(kind, pk)
    page = SUBJECT_PAGES[kind]
    reason = reason_of(request)
    refusal = missing_reason(subject.environment, reason, f"{verb} it")
    if refusal:
        messages.error(request, refusal)
        return redirect(page, pk=pk)
    arguments: dict[str, Any] = {kind: subject, "reason": reason}
    if verb == "promote":
        # The stage the page showed: if the analysis moved on meanwhile, the click answers the
        # current state instead of promoting a stage nobody looked at (as the API's `stage`).
        try:
            arguments["stage"] = int(request.POST.get("stage", ""))
        except ValueError:
            messages.error(request, "Which stage to promote from is missing; reload the page and try again.")
            return redirect(page, pk=pk)
    actor = ui_actor(request)
    service = SERVICES[(kind, verb)]
    try:
        answer = approvals.apply_or_ask(actor=actor, call=lambda: service(actor=actor, **arguments))
    except DomainError as refused:
        messages.error(request, refused.detail)
        return redirect(page, pk=pk)
    if isinstance(answer, Approval):
        messages.success(
            request,
            f"'{subject.environment.key}' needs four eyes: this waits for an Approver other than you "
            f"(approval #{answer.pk}).",
        )
        return redirect(page, pk=pk)
    messages.success(request, _done(kind, verb, answer))
    if verb == "canary":
        return redirect("rollouts:detail", pk=answer.pk)
    return redirect(page, pk=pk)


# (kind, verb) of every control, each with a URL of its own (rollouts/urls.py).
VERB_PATHS = list(SERVICES)
