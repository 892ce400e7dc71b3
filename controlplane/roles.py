"""What a user may do: roles map onto the same scopes API tokens carry."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from controlplane.models import ROLE_SCOPES, Role, UserRole


def role_for_user(user: AbstractBaseUser | AnonymousUser) -> str | None:
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    try:
        return UserRole.objects.only("role").get(user_id=user.pk).role
    except UserRole.DoesNotExist:
        return Role.VIEWER


def scopes_for_user(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    role = role_for_user(user)
    return ROLE_SCOPES[role] if role else frozenset()
