"""Four eyes: in an environment that requires approval, a publish, a rollout or experiment start
and a manual promote need an Approver other than the author.

The guarded services call `require_approval` with the change they are about to make; unless
that change is the one an Approver is approving right now, it raises `ApprovalRequired` (409,
nothing changed). `apply_or_ask` turns that refusal into a pending `Approval` (asking twice
answers the same request). `approve` records the evidence the Approver was shown, then applies
the change in the same transaction, as its author, through the action's registered applier: a
change that no longer applies (the checklist turned red, another rollout started) is refused and
the request stays pending.

flags never imports the apps above it, so they register their actions here from
AppConfig.ready: how to apply one, what evidence to record, and who else counts as its author.
Changes the analysis makes by itself (a system actor) are never held: the rollout they belong to
was approved when it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, Forbidden, InvalidInput
from controlplane.models import ActorKind
from flags.models import Approval, ApprovalAction, ApprovalState, ConfigVersion, Environment, Flag
from flags.services import preconditions
from flags.services.guards import require_reason


@dataclass(frozen=True, slots=True)
class Change:
    """A change that may need a second person: what it does, to what, and how to apply it."""

    action: str
    flag: Flag
    environment: Environment
    subject: str  # "version:8", "rollout:12": asking twice for the same subject is one request
    summary: str
    reason: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


class ApprovalRequired(Conflict):
    """The change needs an Approver other than its author; nothing was changed."""

    code = "approval_required"

    def __init__(self, change: Change) -> None:
        super().__init__(
            f"'{change.environment.key}' needs four eyes: {change.summary} waits for an Approver "
            "other than its author.",
            extra={"action": change.action, "subject": change.subject},
        )
        self.change = change


@dataclass(frozen=True, slots=True)
class Registration:
    """How an app above flags applies one action, what evidence it shows, who else authored it."""

    apply: Callable[[Approval, Actor], Any]
    evidence: Callable[[Approval], dict[str, Any]]
    authors: Callable[[Approval], set[str]] = lambda approval: set()


_registry: dict[str, Registration] = {}
# The approval being applied in this context: the guarded service lets exactly that change pass.
_applying: ContextVar[Approval | None] = ContextVar("flagstaff_applying_approval", default=None)
# Set while a change that never needs an approval (a rollback) runs; the value says which.
_not_needed: ContextVar[str] = ContextVar("flagstaff_approval_not_needed", default="")


def register(action: str, registration: Registration) -> None:
    """Register (or replace) how `action` is applied; ready() may run more than once."""
    _registry[action] = registration


@contextmanager
def not_needed(why: str) -> Iterator[None]:
    """Run a change that needs no approval even where four eyes are required (a rollback: it
    never waits on anything); `why` is what the refusal would otherwise have named."""
    token = _not_needed.set(why)
    try:
        yield
    finally:
        _not_needed.reset(token)


def _matches(approval: Approval, change: Change) -> bool:
    return (
        approval.action == change.action
        and approval.flag_id == change.flag.pk
        and approval.environment_id == change.environment.pk
        and approval.subject == change.subject
    )


def require_approval(*, change: Change, actor: Actor) -> None:
    """Refuse `change` with ApprovalRequired when its environment requires four eyes and it is
    not the change an Approver is approving now (or a change inside it)."""
    if not change.environment.requires_approval or actor.kind == ActorKind.SYSTEM or _not_needed.get():
        return
    applying = _applying.get()
    if applying is not None and (
        _matches(applying, change)
        # What an approved change does on its way (a promotion to 100 % publishes the
        # candidate) is part of the change that was approved.
        or (applying.flag_id == change.flag.pk and applying.environment_id == change.environment.pk)
    ):
        return
    raise ApprovalRequired(change)


# Requests


@transaction.atomic
def request_approval(*, change: Change, actor: Actor) -> Approval:
    """File `change` for an Approver; the pending request for the same change if there is one."""
    existing = Approval.objects.pending().filter(
        action=change.action, flag=change.flag, environment=change.environment, subject=change.subject
    )
    if (found := existing.first()) is not None:
        return found
    try:
        with transaction.atomic():
            approval = Approval.objects.create(
                action=change.action,
                flag=change.flag,
                environment=change.environment,
                subject=change.subject,
                params=dict(change.params),
                summary=change.summary[:300],
                reason=change.reason,
                author_kind=actor.kind,
                author_id=actor.id,
                author_name=actor.name,
            )
    except IntegrityError:
        # A concurrent request for the same change won the partial unique index.
        return existing.get()
    audit.record(
        actor=actor,
        action="approval.requested",
        target=approval,
        changes={"action": change.action, "subject": change.subject, "params": dict(change.params)},
        reason=change.reason,
        flag_key=change.flag.key,
        environment_key=change.environment.key,
    )
    return approval


def apply_or_ask(*, actor: Actor, call: Callable[[], Any]) -> Any:
    """Run `call` (one guarded service); where four eyes are needed, file the change for an
    Approver instead and answer the pending Approval."""
    try:
        return call()
    except ApprovalRequired as needed:
        return request_approval(change=needed.change, actor=actor)


# Decisions


def _lock(approval: Approval) -> Approval:
    return Approval.objects.select_for_update().select_related("flag", "environment").get(pk=approval.pk)


def _is_author(approval: Approval, actor: Actor) -> bool:
    if actor.kind == approval.author_kind and actor.id == approval.author_id:
        return True
    registration = _registry.get(approval.action)
    others = registration.authors(approval) if registration else set()
    return actor.name in {approval.author_name, *others}


def _author(approval: Approval, source: str) -> Actor:
    return Actor(kind=approval.author_kind, id=approval.author_id, name=approval.author_name, source=source)


def _undecided(approval: Approval, verb: str) -> Conflict:
    return Conflict(
        f"Approval {approval.pk} is {approval.get_state_display().lower()} already; it cannot be {verb}.",
        code="approval_decided",
        extra={"state": approval.state},
    )


def _decide(
    approval: Approval, *, state: str, actor: Actor, reason: str, evidence: Mapping[str, Any]
) -> None:
    now = timezone.now()
    Approval.objects.filter(pk=approval.pk).update(
        state=state,
        decided_by_kind=actor.kind,
        decided_by_id=actor.id,
        decided_by_name=actor.name,
        decided_at=now,
        decision_reason=reason,
        evidence=dict(evidence),
    )
    approval.state, approval.decided_by_name, approval.decided_at = state, actor.name, now
    approval.decided_by_kind, approval.decided_by_id = actor.kind, actor.id
    approval.decision_reason, approval.evidence = reason, dict(evidence)
    changes = {"action": approval.action, "subject": approval.subject}
    audit.record(
        actor=actor,
        action=f"approval.{state}",
        target=approval,
        changes={**changes, "evidence": dict(evidence)} if evidence else changes,
        reason=reason,
        flag_key=approval.flag.key,
        environment_key=approval.environment.key,
    )


def evidence_for(approval: Approval) -> dict[str, Any]:
    """What an Approver is shown for `approval` now (and what approving it records)."""
    registration = _registry.get(approval.action)
    if registration is None:
        raise Conflict(f"No app applies '{approval.action}' changes.", code="unknown_action")
    return registration.evidence(approval)


@transaction.atomic
def approve(*, approval: Approval, actor: Actor, reason: str = "") -> Approval:
    """Approve another person's change: record what was shown, then apply it as its author."""
    approval = _lock(approval)
    if approval.state == ApprovalState.APPROVED and approval.decided_by_name == actor.name:
        return approval
    if approval.state != ApprovalState.PENDING:
        raise _undecided(approval, "approved")
    if _is_author(approval, actor):
        raise Forbidden(
            f"You are an author of this change ({approval.summary}); four eyes means another "
            "Approver approves it.",
            code="own_change",
        )
    require_reason(approval.environment, reason)
    evidence = evidence_for(approval)
    _decide(approval, state=ApprovalState.APPROVED, actor=actor, reason=reason, evidence=evidence)
    token = _applying.set(approval)
    try:
        _registry[approval.action].apply(approval, _author(approval, actor.source))
    finally:
        _applying.reset(token)
    return approval


@transaction.atomic
def reject(*, approval: Approval, actor: Actor, reason: str) -> Approval:
    """Turn another person's change down, saying why; nothing else changes."""
    approval = _lock(approval)
    if approval.state == ApprovalState.REJECTED and approval.decided_by_name == actor.name:
        return approval
    if approval.state != ApprovalState.PENDING:
        raise _undecided(approval, "rejected")
    if _is_author(approval, actor):
        raise Forbidden("You asked for this change; withdraw it instead of rejecting it.", code="own_change")
    if not reason.strip():
        raise InvalidInput(
            "Say why the change is rejected: its author reads it.",
            code="reason_required",
            errors=[{"path": "reason", "message": "Required to reject a change."}],
        )
    _decide(approval, state=ApprovalState.REJECTED, actor=actor, reason=reason, evidence={})
    return approval


@transaction.atomic
def cancel(*, approval: Approval, actor: Actor, reason: str = "") -> Approval:
    """Withdraw one's own pending request."""
    approval = _lock(approval)
    if approval.state == ApprovalState.CANCELLED:
        return approval
    if approval.state != ApprovalState.PENDING:
        raise _undecided(approval, "withdrawn")
    if not (actor.kind == approval.author_kind and actor.id == approval.author_id):
        raise Forbidden(
            f"Only {approval.author_name}, who asked for it, can withdraw this request.", code="not_author"
        )
    _decide(approval, state=ApprovalState.CANCELLED, actor=actor, reason=reason, evidence={})
    return approval


# Publishing is flags' own action.


def publish_change(*, version: ConfigVersion, environment: Environment, reason: str) -> Change:
    return Change(
        action=ApprovalAction.PUBLISH,
        flag=version.flag,
        environment=environment,
        subject=f"version:{version.number}",
        summary=f"publishing v{version.number} of '{version.flag.key}' in '{environment.key}'",
        reason=reason,
        params={"version": version.number},
    )


def _apply_publish(approval: Approval, author: Actor) -> None:
    from flags.services.publishing import publish_version

    publish_version(
        flag=approval.flag,
        environment=approval.environment,
        number=int(approval.params["version"]),
        actor=author,
        reason=approval.reason,
    )


def _publish_evidence(approval: Approval) -> dict[str, Any]:
    version = ConfigVersion.objects.get(flag=approval.flag, number=approval.params["version"])
    change = preconditions.ServingChange(
        flag=approval.flag, environment=approval.environment, version=version, action="publish"
    )
    state = approval.flag.states.filter(environment=approval.environment).select_related("serving_version")
    serving = state.first()
    return {
        "version": version.number,
        "serving_version": serving.serving_version.number if serving and serving.serving_version else None,
        "preconditions": [outcome.as_dict() for outcome in preconditions.evaluate(change)],
    }


def _publish_authors(approval: Approval) -> set[str]:
    version = ConfigVersion.objects.filter(flag=approval.flag, number=approval.params["version"]).first()
    return {version.author_name} if version else set()


register(
    ApprovalAction.PUBLISH,
    Registration(apply=_apply_publish, evidence=_publish_evidence, authors=_publish_authors),
)
