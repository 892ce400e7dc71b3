"""Plain factory functions (each builds one object through the services, as the app would) and
small helpers shared by tests: audit marks, API clients for a caller, tampering with the audit log."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Max
from rest_framework.test import APIClient

from controlplane.audit import Actor
from controlplane.models import AuditEntry, Role, UserRole
from controlplane.services import IssuedToken, create_api_token
from flags import services
from flags.models import ConfigVersion, Environment, Flag

FACTORY_ACTOR = Actor.system("tests")
# Valid for every surface but `agent`, with no warnings (a cache breakpoint is set).
VALID_CONTENT: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 1024,
    "cache_control": {"type": "ephemeral"},
}

_append_only = importlib.import_module("controlplane.migrations.0002_audit_append_only")
_sequence = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_sequence)}"


def make_environment(**overrides: Any) -> Environment:
    """An unprotected environment unless `protected=True`, even for the key production: tests
    not about protection then need no reasons."""
    fields: dict[str, Any] = {"key": _unique("env"), "name": "", "protected": False}
    fields.update(overrides)
    return services.create_environment(actor=FACTORY_ACTOR, **fields)


def make_flag(**overrides: Any) -> Flag:
    fields: dict[str, Any] = {"key": _unique("flag"), "name": "", "surface": "chat"}
    fields.update(overrides)
    return services.create_flag(actor=FACTORY_ACTOR, **fields)


def make_version(*, flag: Flag | None = None, **overrides: Any) -> ConfigVersion:
    """A valid version of `flag` (a new chat flag by default); `content` replaces the default."""
    fields: dict[str, Any] = {"content": dict(VALID_CONTENT), "message": ""}
    fields.update(overrides)
    return services.create_version(flag=flag or make_flag(), actor=FACTORY_ACTOR, **fields).version


def make_user(*, role: str | None = Role.VIEWER, **overrides: Any) -> User:
    """A user holding `role`; `role=None` leaves the user without a role row (a Viewer)."""
    fields: dict[str, Any] = {"username": _unique("user")}
    fields.update(overrides)
    user = get_user_model().objects.create_user(**fields)
    if role is not None:
        UserRole.objects.create(user=user, role=role)
    return user


def make_token(
    *,
    scopes: list[str] | tuple[str, ...] = ("read",),
    environment: Environment | None = None,
    **overrides: Any,
) -> IssuedToken:
    fields: dict[str, Any] = {"name": _unique("token")}
    fields.update(overrides)
    return create_api_token(scopes=scopes, environment=environment, actor=FACTORY_ACTOR, **fields)


def audit_mark() -> int:
    """The id of the newest audit entry, to collect the entries a step writes after it."""
    return AuditEntry.objects.aggregate(top=Max("id"))["top"] or 0


def audit_since(mark: int) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(id__gt=mark).order_by("id"))


@contextmanager
def append_only_trigger_off() -> Iterator[None]:
    """Tamper behind the application's back: lift the trigger inside the test's transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE controlplane_auditentry DISABLE TRIGGER audit_entry_append_only")
            yield
            cursor.execute("ALTER TABLE controlplane_auditentry ENABLE TRIGGER audit_entry_append_only")
        else:
            cursor.execute("DROP TRIGGER audit_entry_no_update")
            yield
            cursor.execute(_append_only.SQLITE_FORWARD)


def client_for(caller: User | IssuedToken | None = None) -> APIClient:
    """An API client that logs a user in by session, sends a token as Bearer, or is anonymous."""
    client = APIClient(raise_request_exception=False)
    if isinstance(caller, IssuedToken):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {caller.secret}")
    elif caller is not None:
        client.force_login(caller)
    return client
