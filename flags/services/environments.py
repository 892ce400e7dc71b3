"""Creating environments, and protecting them."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict
from controlplane.free_text import check_free_text, column_limit
from flags.models import Environment
from flags.services.guards import check_key, require_reason

PROTECTED_BY_DEFAULT = frozenset({"production"})


@transaction.atomic
def create_environment(*, key: str, name: str, actor: Actor, protected: bool | None = None) -> Environment:
    """Create an environment; `protected` defaults to on for production, off elsewhere."""
    check_key(key)
    check_free_text({"name": name}, limits={"name": column_limit(Environment, "name")})
    if protected is None:
        protected = key in PROTECTED_BY_DEFAULT
    if Environment.objects.filter(key=key).exists():
        raise Conflict(f"An environment with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            environment = Environment.objects.create(key=key, name=name or key, protected=protected)
    except IntegrityError:
        raise Conflict(f"An environment with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="environment.created",
        target=environment,
        changes={"after": {"key": key, "name": environment.name, "protected": protected}},
        environment_key=key,
    )
    return environment


@transaction.atomic
def set_environment_protected(
    *, environment: Environment, protected: bool, actor: Actor, reason: str = ""
) -> Environment:
    """Turn protection on or off; turning it off is itself a change that needs a reason."""
    environment = Environment.objects.select_for_update().get(pk=environment.pk)
    if environment.protected == protected:
        return environment
    require_reason(environment, reason)
    environment.protected = protected
    environment.save(update_fields=["protected"])
    audit.record(
        actor=actor,
        action="environment.protected" if protected else "environment.unprotected",
        target=environment,
        changes={"protected": {"before": not protected, "after": protected}},
        reason=reason,
        environment_key=environment.key,
    )
    return environment


@transaction.atomic
def set_environment_requires_approval(
    *, environment: Environment, required: bool, actor: Actor, reason: str = ""
) -> Environment:
    """Turn four eyes on or off (a publish, a rollout start and a manual promote then need an
    Approver other than the author); either way a change in a protected environment says why."""
    environment = Environment.objects.select_for_update().get(pk=environment.pk)
    if environment.requires_approval == required:
        return environment
    require_reason(environment, reason)
    environment.requires_approval = required
    environment.save(update_fields=["requires_approval"])
    audit.record(
        actor=actor,
        action="environment.approval_required" if required else "environment.approval_not_required",
        target=environment,
        changes={"requires_approval": {"before": not required, "after": required}},
        reason=reason,
        environment_key=environment.key,
    )
    return environment
