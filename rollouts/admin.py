"""Operator admin for the rollouts app: read-only, since every write goes through rollouts.services."""

from django.contrib import admin

from controlplane.admin import ReadOnlyAdmin
from rollouts.models import Decision, Guardrail, Rollout, Stage


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["id", "flag", "environment", "baseline", "candidate", "state", "stage_index", "version"]
    list_filter = ["state"]
    search_fields = ["flag__key"]


@admin.register(Stage)
class StageAdmin(ReadOnlyAdmin):
    list_display = ["rollout", "index", "weight", "gate", "state", "started_at", "ended_at"]


@admin.register(Guardrail)
class GuardrailAdmin(ReadOnlyAdmin):
    list_display = ["rollout", "name", "metric", "kind", "margin", "critical", "may_act"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["rollout", "tick", "action", "reason", "applied", "created_at"]
    list_filter = ["action", "reason", "applied"]
