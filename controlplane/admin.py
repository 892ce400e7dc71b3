"""Operator admin: the audit log is read-only; tokens are issued and revoked through services."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from controlplane.audit import Actor
from controlplane.models import ApiToken, AuditEntry, UserRole
from controlplane.services import revoke_api_token


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "actor_name", "source", "action", "target_label", "environment_key"]
    list_filter = ["action", "source", "actor_kind"]
    search_fields = ["actor_name", "target_label", "flag_key", "environment_key", "reason"]
    date_hierarchy = "created_at"


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "scopes", "environment", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        actor = Actor.for_user(request.user, source="ui")
        for token in queryset.filter(revoked_at__isnull=True):
            revoke_api_token(token=token, actor=actor, reason="revoked in Django admin")


@admin.register(UserRole)
class UserRoleAdmin(ReadOnlyAdmin):
    list_display = ["user", "role"]
