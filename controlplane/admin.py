"""Operator admin: domain tables are read-only (their writes go through services); the accounts
Django's admin does edit (users, groups) are audited by the admin itself.

Every admin write reaches the audit log: the ModelAdmin hooks that Django calls for each add,
change (the password form included) and delete record an entry with the actor and the fields
before and after, in the transaction of the write.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse

from controlplane import audit
from controlplane.audit import Actor
from controlplane.models import ApiToken, AuditEntry, Source, UserRole
from controlplane.services import revoke_api_token

ADMIN_REASON = "changed in Django admin"


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedAdmin(admin.ModelAdmin[Any]):
    """A ModelAdmin whose every write records an audit entry `<audit_name>.created|changed|deleted`.

    `audit_fields` are recorded before and after; a field in `secret_fields` is recorded only as
    changed, never by value.
    """

    audit_name: str
    audit_fields: tuple[str, ...]
    secret_fields: tuple[str, ...] = ()

    def snapshot(self, obj: models.Model) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name in self.audit_fields:
            field = obj._meta.get_field(name)
            if field.many_to_many:
                state[name] = sorted(str(related) for related in getattr(obj, name).all())
            else:
                state[name] = getattr(obj, name)
        return state

    def _stash_before(self, request: HttpRequest, obj: models.Model) -> None:
        stash: dict[Any, dict[str, Any]] = request.__dict__.setdefault("_audit_before", {})
        stash.setdefault(obj.pk, self.snapshot(obj))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # The first read of the object, before a bound form changes it in memory.
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self._stash_before(request, obj)
        return obj

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            self._stash_before(request, type(obj)._default_manager.get(pk=obj.pk))
        super().save_model(request, obj, form, change)

    def _record(self, request: HttpRequest, obj: models.Model, verb: str, changes: dict[str, Any]) -> None:
        audit.record(
            actor=Actor.for_user(request.user, source=Source.UI),
            action=f"{self.audit_name}.{verb}",
            target=obj,
            changes=changes,
            reason=ADMIN_REASON,
        )

    def _shown(self, state: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in state.items() if name not in self.secret_fields}

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._record(request, obj, "created", {"after": self._shown(self.snapshot(obj))})
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        before = request.__dict__.get("_audit_before", {}).get(obj.pk, {})
        after = self.snapshot(obj)
        changes: dict[str, Any] = {}
        for name, value in after.items():
            if before.get(name) == value:
                continue
            changes[name] = (
                {"changed": True}
                if name in self.secret_fields
                else {"before": before.get(name), "after": value}
            )
        if changes:  # a save that changed nothing is not an action
            self._record(request, obj, "changed", changes)
        return super().log_change(request, obj, message)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic(using=router.db_for_write(self.model)):
            self._record(request, obj, "deleted", {"before": self._shown(self.snapshot(obj))})
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic(using=router.db_for_write(self.model)):
            for obj in queryset:
                self._record(request, obj, "deleted", {"before": self._shown(self.snapshot(obj))})
            super().delete_queryset(request, queryset)


class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    audit_name = "user"
    audit_fields = (
        "username",
        "first_name",
        "last_name",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "groups",
        "user_permissions",
        "password",
    )
    secret_fields = ("password",)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django's password form saves outside a transaction; the audit entry joins the save.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().user_change_password(request, id, form_url)


class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    audit_name = "group"
    audit_fields = ("name", "permissions")


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)


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
