"""Pages of the flags app."""

from django.urls import path
from django.views.generic import RedirectView

from flags import views

app_name = "flags"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="flags:list"), name="home"),
    path("flags/", views.flag_list, name="list"),
    path("environments/new/", views.environment_create, name="environment-create"),
    path("models/", views.model_catalog, name="models"),
    path("flags/<slug:key>/", views.flag_detail, name="detail"),
    path("flags/<slug:key>/environments/<slug:env>/publish/", views.publish, name="publish"),
    path(
        "flags/<slug:key>/environments/<slug:env>/enable/",
        views.set_enabled,
        {"enabled": True},
        name="enable",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/disable/",
        views.set_enabled,
        {"enabled": False},
        name="disable",
    ),
    path("flags/<slug:key>/versions/new/", views.version_new, name="version-new"),
    path("flags/<slug:key>/versions/<int:number>/", views.version_detail, name="version"),
    path("flags/<slug:key>/diff/", views.diff, name="diff"),
    path("flags/<slug:key>/environments/<slug:env>/targeting/", views.targeting, name="targeting"),
    path("flags/<slug:key>/environments/<slug:env>/targeting/rules/", views.rule_add, name="rule-add"),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/rules/<int:index>/move/",
        views.rule_move,
        name="rule-move",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/rules/<int:index>/remove/",
        views.rule_remove,
        name="rule-remove",
    ),
    path("flags/<slug:key>/environments/<slug:env>/targeting/split/", views.split_set, name="split-set"),
    path(
        "flags/<slug:key>/environments/<slug:env>/targeting/split/clear/",
        views.split_clear,
        name="split-clear",
    ),
    path("flags/<slug:key>/environments/<slug:env>/targeting/try/", views.try_context_view, name="try"),
    path("segments/", views.segment_list, name="segments"),
    path("segments/<slug:key>/", views.segment_detail, name="segment"),
    path("segments/<slug:key>/delete/", views.segment_delete, name="segment-delete"),
]
