"""Creating environments."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict
from controlplane.free_text import check_free_text, column_limit
from flags.models import Environment
from flags.services.guards import check_key


@transaction.atomic
def create_environment(*, key: str, name: str, actor: Actor) -> Environment:
    check_key(key)
    check_free_text({"name": name}, limits={"name": column_limit(Environment, "name")})
    if Environment.objects.filter(key=key).exists():
        raise Conflict(f"An environment with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            environment = Environment.objects.create(key=key, name=name or key)
    except IntegrityError:
        raise Conflict(f"An environment with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="environment.created",
        target=environment,
        changes={"after": {"key": key, "name": environment.name}},
        environment_key=key,
    )
    return environment
