"""Operator admin for the evals app: read-only, since every write goes through evals.services."""

from django.contrib import admin

from controlplane.admin import ReadOnlyAdmin
from evals.models import (
    CaseOutput,
    CaseScore,
    EvalCase,
    EvalRun,
    EvalSet,
    EvalSetVersion,
    GatePolicy,
    GateVerdict,
    JudgeCalibration,
    JudgeLabel,
    JudgeSpend,
    JudgeVerdict,
    LiveScore,
    LiveScoreRollup,
    LiveScoringPolicy,
    RunCase,
)


@admin.register(EvalSet)
class EvalSetAdmin(ReadOnlyAdmin):
    list_display = ["key", "surface", "flag", "created_at"]
    search_fields = ["key", "description"]
    list_filter = ["surface"]


@admin.register(EvalSetVersion)
class EvalSetVersionAdmin(ReadOnlyAdmin):
    list_display = ["eval_set", "number", "source", "case_count", "content_hash", "author_name", "created_at"]
    list_filter = ["source"]


@admin.register(EvalCase)
class EvalCaseAdmin(ReadOnlyAdmin):
    list_display = ["version", "position", "case_hash", "origin"]
    list_select_related = ["version__eval_set"]


@admin.register(EvalRun)
class EvalRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "flag",
        "config_version",
        "eval_set_version",
        "mode",
        "state",
        "cases_done",
        "created_at",
    ]
    list_filter = ["state", "mode"]


@admin.register(RunCase)
class RunCaseAdmin(ReadOnlyAdmin):
    list_display = ["run", "case", "state", "reused", "passed", "attempts"]
    list_filter = ["state"]


@admin.register(CaseOutput)
class CaseOutputAdmin(ReadOnlyAdmin):
    list_display = ["content_hash", "case_hash", "model", "stop_reason", "cost_micro_usd", "created_at"]


@admin.register(CaseScore)
class CaseScoreAdmin(ReadOnlyAdmin):
    list_display = ["output", "scorer", "scorer_version", "score", "passed", "error"]
    list_filter = ["scorer"]


@admin.register(GatePolicy)
class GatePolicyAdmin(ReadOnlyAdmin):
    list_display = ["flag", "eval_set", "version_policy", "required_pass_rate", "margin", "updated_at"]


@admin.register(GateVerdict)
class GateVerdictAdmin(ReadOnlyAdmin):
    list_display = ["config_version", "eval_set_version", "passed", "overridden_at", "created_at"]
    list_filter = ["passed"]


@admin.register(JudgeLabel)
class JudgeLabelAdmin(ReadOnlyAdmin):
    list_display = ["judge", "case", "human_passed", "labelled_by", "updated_at"]


@admin.register(JudgeVerdict)
class JudgeVerdictAdmin(ReadOnlyAdmin):
    list_display = ["judge_version", "label", "passed", "score", "error"]


@admin.register(JudgeCalibration)
class JudgeCalibrationAdmin(ReadOnlyAdmin):
    list_display = ["judge_version", "n_labels", "agreement", "kappa", "computed_at"]


@admin.register(LiveScoringPolicy)
class LiveScoringPolicyAdmin(ReadOnlyAdmin):
    list_display = ["flag", "enabled", "daily_judge_budget_micro_usd", "updated_at"]


@admin.register(LiveScore)
class LiveScoreAdmin(ReadOnlyAdmin):
    list_display = ["sample", "scorer", "score", "passed", "error", "scored_at"]
    list_filter = ["scorer"]


@admin.register(LiveScoreRollup)
class LiveScoreRollupAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "environment", "flag", "version", "arm", "scorer", "n", "passed", "errors"]


@admin.register(JudgeSpend)
class JudgeSpendAdmin(ReadOnlyAdmin):
    list_display = ["day", "flag", "micro_usd"]
