"""Operator admin for the flags app: read-only, since every write goes through flags.services."""

from django.contrib import admin

from controlplane.admin import ReadOnlyAdmin
from flags.models import ClaudeModel, ConfigVersion, Environment, Flag, FlagState, ModelPrice


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    list_display = ["key", "name", "revision", "created_at"]


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ["key", "name", "surface", "owner", "archived_at"]
    search_fields = ["key", "name", "owner"]
    list_filter = ["surface"]


@admin.register(ConfigVersion)
class ConfigVersionAdmin(ReadOnlyAdmin):
    list_display = ["flag", "number", "content_hash", "author_name", "created_at"]
    list_filter = ["flag"]


@admin.register(FlagState)
class FlagStateAdmin(ReadOnlyAdmin):
    list_display = ["flag", "environment", "enabled", "serving_version", "updated_at"]


class ModelPriceInline(admin.TabularInline[ModelPrice, ClaudeModel]):
    model = ModelPrice
    extra = 0
    can_delete = False

    max_num = 0
    readonly_fields = ["token_type", "tier", "context", "usd_per_mtok", "effective_from"]


@admin.register(ClaudeModel)
class ClaudeModelAdmin(ReadOnlyAdmin):
    list_display = ["model_id", "line", "lifecycle", "deprecated_at", "retires_at", "replacement", "source"]
    list_filter = ["lifecycle", "line"]
    inlines = [ModelPriceInline]
