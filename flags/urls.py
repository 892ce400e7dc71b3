"""Pages of the flags app."""

from django.urls import path
from django.views.generic import RedirectView

from flags.views import approvals, catalog, flags, publishing, segments, targeting, version_diff, versions

app_name = "flags"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="flags:list"), name="home"),
    path("flags/", flags.flag_list, name="list"),
    path("environments/new/", flags.environment_create, name="environment-create"),
    path("models/", catalog.model_catalog, name="models"),
    path("approvals/", approvals.approval_list, name="approvals"),
    path("approvals/<int:pk>/decide/", approvals.approval_decide, name="approval-decide"),
    path("flags/<slug:key>/", flags.flag_detail, name="detail"),
    path("flags/<slug:key>/edit/", flags.flag_edit, name="edit"),
    path("flags/<slug:key>/environments/<slug:env>/publish/", publishing.publish, name="publish"),
    path(
        "flags/<slug:key>/environments/<slug:env>/enable/",
        publishing.set_enabled,
        {"enabled": True},
        name="enable",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/disable/",
        publishing.set_enabled,
        {"enabled": False},
        name="disable",
    ),
    path("flags/<slug:key>/versions/new/", versions.version_new, name="version-new"),
    path("flags/<slug:key>/versions/<int:number>/", versions.version_detail, name="version"),
    path("flags/<slug:key>/diff/", version_diff.diff, name="diff"),
    path("flags/<slug:key>/environments/<slug:env>/targeting/", targeting.targeting, name="targeting"),
    path("flags/<slug:key>/environments/<slug:env>/targeting/rules/", targeting.rule_add, name="rule-add"),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/rules/<int:index>/edit/",
        targeting.rule_edit,
        name="rule-edit",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/rules/<int:index>/move/",
        targeting.rule_move,
        name="rule-move",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/rules/<int:index>/remove/",
        targeting.rule_remove,
        name="rule-remove",
    ),
    path("flags/<slug:key>/environments/<slug:env>/targeting/split/", targeting.split_set, name="split-set"),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/split/clear/",
        targeting.split_clear,
        name="split-clear",
    ),
    path("flags/<slug:key>/environments/<slug:env>/targeting/try/", targeting.try_context_view, name="try"),
    path("segments/", segments.segment_list, name="segments"),
    path("segments/<slug:key>/", segments.segment_detail, name="segment"),
    path("segments/<slug:key>/delete/", segments.segment_delete, name="segment-delete"),
]
