"""Writes of the core app: API tokens, roles and the bootstrap administrator."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.free_text import check_free_text, column_limit
from controlplane.models import ApiToken, Role, Scope, UserRole
from controlplane.tokens import generate_secret, hash_secret

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser

    from flags.models import Environment


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str


@transaction.atomic
def create_api_token(
    *, name: str, scopes: Iterable[str], actor: Actor, environment: Environment | None = None
) -> IssuedToken:
    """Issue a token; the secret is returned once and only its hash is kept."""
    scope_list = sorted(set(scopes))
    unknown = [scope for scope in scope_list if scope not in Scope.values]
    if not name.strip():
        raise InvalidInput("A token needs a name.", errors=[{"path": "name", "message": "Required."}])
    check_free_text({"name": name.strip()}, limits={"name": column_limit(ApiToken, "name")})
    if not scope_list or unknown:
        raise InvalidInput(
            "Choose at least one known scope.",
            errors=[{"path": "scopes", "message": f"Known scopes: {', '.join(Scope.values)}."}],
        )
    secret = generate_secret()
    token = ApiToken.objects.create(
        name=name.strip(),
        prefix=secret[:10],
        token_hash=hash_secret(secret),
        scopes=scope_list,
        environment=environment,
        created_by_id=actor.id if actor.kind == "user" else None,
    )
    audit.record(
        actor=actor,
        action="token.created",
        target=token,
        changes={
            "name": token.name,
            "scopes": scope_list,
            "environment": environment.key if environment else None,
        },
        environment_key=environment.key if environment else "",
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def revoke_api_token(*, token: ApiToken, actor: Actor, reason: str = "") -> ApiToken:
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if not updated:
        raise Conflict(f"Token '{token.name}' is already revoked.", code="already_revoked")
    token.refresh_from_db()
    audit.record(
        actor=actor, action="token.revoked", target=token, changes={"name": token.name}, reason=reason
    )
    return token


@transaction.atomic
def set_user_role(*, user: AbstractUser, role: str, actor: Actor) -> UserRole:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role '{role}'.", errors=[{"path": "role", "message": "Unknown role."}])
    assignment, _ = UserRole.objects.select_for_update().get_or_create(user=user)
    before = assignment.role
    if before == role:
        return assignment
    assignment.role = role
    assignment.save(update_fields=["role"])
    audit.record(
        actor=actor,
        action="user.role_changed",
        target=assignment,
        changes={"user": user.get_username(), "role": {"before": before, "after": role}},
    )
    return assignment


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    email: str
    password: str | None
    created: bool


@transaction.atomic
def ensure_admin(*, email: str, password: str | None) -> BootstrapResult:
    """Create the administrator account `email` if it is missing; safe to call on every start.

    Without a password one is generated and returned, to be shown exactly once.
    """
    user_model = get_user_model()
    existing = user_model.objects.filter(username=email).first()
    if existing is not None:
        if password and not existing.check_password(password):
            existing.set_password(password)
            existing.save(update_fields=["password"])
            audit.record(
                actor=Actor.system("bootstrap"),
                action="user.password_reset",
                target=existing,
                changes={"user": email},
            )
        return BootstrapResult(email=email, password=None, created=False)
    chosen = password or secrets.token_urlsafe(12)
    user = user_model.objects.create_superuser(username=email, email=email, password=chosen)
    audit.record(
        actor=Actor.system("bootstrap"),
        action="user.created",
        target=user,
        changes={"user": email, "role": Role.ADMIN},
    )
    return BootstrapResult(email=email, password=None if password else chosen, created=True)
