"""Writes of the core app: API tokens, users and their roles, and the bootstrap administrator."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
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


@dataclass(frozen=True, slots=True)
class NewUser:
    user: AbstractUser
    password: str | None
    """The generated first password, to be shown once; None when the caller chose one."""


def _admin_q() -> Q:
    return Q(is_superuser=True) | Q(flagstaff_role__role=Role.ADMIN)


def _lock_admins() -> None:
    """Lock every row that makes someone an Admin, in one order, before counting them.

    Two Admins demoting or deactivating each other at once must not both succeed: each change
    that can shrink the set of Admins waits here for the other, then counts what it left.
    Single-table locks (no join), since PostgreSQL cannot lock the nullable side of an outer join.
    """
    list(UserRole.objects.select_for_update().filter(role=Role.ADMIN).order_by("pk").values_list("pk"))
    list(
        get_user_model()
        .objects.select_for_update()
        .filter(is_superuser=True)
        .order_by("pk")
        .values_list("pk")
    )


def active_admins() -> list[AbstractUser]:
    """The active users who hold the Admin role (superusers included), by username."""
    users = get_user_model().objects.filter(_admin_q(), is_active=True).distinct()
    return list(users.order_by("username"))


def _refuse_if_last_admin(user: AbstractUser, change: str) -> None:
    _lock_admins()
    others = get_user_model().objects.filter(_admin_q(), is_active=True).exclude(pk=user.pk)
    is_admin = user.is_active and (user.is_superuser or role_of(user) == Role.ADMIN)
    if is_admin and not others.exists():
        raise Conflict(
            f"{user.get_username()} is the last Admin; make someone else an Admin before you {change}.",
            code="last_admin",
        )


def role_of(user: AbstractUser) -> str:
    """The role stored for `user` (superusers are Admins), read from the database."""
    if user.is_superuser:
        return Role.ADMIN
    stored = UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
    return stored or Role.VIEWER


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise InvalidInput(
            f"Unknown role '{role}'.",
            code="unknown_role",
            errors=[{"path": "role", "message": f"Choose one of: {', '.join(Role.values)}."}],
        )


def _checked_email(email: str) -> str:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput(
            f"'{email}' is not an email address.",
            errors=[{"path": "email", "message": "Enter a valid email address."}],
        ) from None
    return email


@transaction.atomic
def create_user(
    *, email: str, role: str, actor: Actor, password: str | None = None, reason: str = ""
) -> NewUser:
    """Create a user who logs in with `email`; without a password one is generated, shown once."""
    email = _checked_email(email)
    _check_role(role)
    user_model = get_user_model()
    if user_model.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).exists():
        raise Conflict(f"A user '{email}' already exists.", code="duplicate_user")
    chosen = password or secrets.token_urlsafe(12)
    candidate = user_model(username=email, email=email)
    try:
        validate_password(chosen, candidate)
    except ValidationError as error:
        raise InvalidInput(
            "The password is too weak.",
            code="weak_password",
            errors=[{"path": "password", "message": message} for message in error.messages],
        ) from None
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=email, email=email, password=chosen)
    except IntegrityError:
        raise Conflict(f"A user '{email}' already exists.", code="duplicate_user") from None
    UserRole.objects.create(user=user, role=role)
    audit.record(
        actor=actor,
        action="user.created",
        target=user,
        changes={"user": email, "role": role},
        reason=reason,
    )
    return NewUser(user=user, password=None if password else chosen)


@transaction.atomic
def set_user_role(*, user: AbstractUser, role: str, actor: Actor, reason: str = "") -> UserRole:
    """Give `user` one role. A superuser given another role stops being a superuser: the role
    shown everywhere is then the one they hold. The last active Admin keeps the Admin role."""
    _check_role(role)
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    before = role_of(user)
    if role != Role.ADMIN and before == Role.ADMIN:
        _refuse_if_last_admin(user, "change their role")
    assignment, _ = UserRole.objects.select_for_update().get_or_create(user=user)
    changes: dict[str, Any] = {"user": user.get_username(), "role": {"before": before, "after": role}}
    if before == role and assignment.role == role:
        return assignment
    assignment.role = role
    assignment.save(update_fields=["role"])
    if user.is_superuser and role != Role.ADMIN:
        user.is_superuser = False
        user.save(update_fields=["is_superuser"])
        changes["superuser"] = {"before": True, "after": False}
    audit.record(actor=actor, action="user.role_changed", target=user, changes=changes, reason=reason)
    return assignment


@transaction.atomic
def set_user_active(*, user: AbstractUser, active: bool, actor: Actor, reason: str = "") -> AbstractUser:
    """Deactivate (no login, no session) or reactivate a user; the last active Admin stays active."""
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    if user.is_active == active:
        return user
    if not active:
        _refuse_if_last_admin(user, "deactivate them")
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit.record(
        actor=actor,
        action="user.activated" if active else "user.deactivated",
        target=user,
        changes={"user": user.get_username(), "active": {"before": not active, "after": active}},
        reason=reason,
    )
    return user


@transaction.atomic
def update_user(
    *, user: AbstractUser, actor: Actor, role: str | None = None, active: bool | None = None, reason: str = ""
) -> AbstractUser:
    """Change a user's role and/or whether they are active, both or neither."""
    if role is not None:
        set_user_role(user=user, role=role, actor=actor, reason=reason)
    if active is not None:
        set_user_active(user=user, active=active, actor=actor, reason=reason)
    user.refresh_from_db()
    return user


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
