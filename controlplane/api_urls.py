"""Routes of the REST API, mounted at /api/v1/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane import api as core_api
from flags import api as flags_api
from flags import serving_api, serving_stream
from telemetry.api import budgets as budgets_api
from telemetry.api import calls as telemetry_calls_api

app_name = "api"

urlpatterns = [
    # Serving first: it carries nearly all the traffic, and Django tries patterns in order.
    path("resolve", serving_api.ResolveView.as_view(), name="resolve"),
    path("resolve/bulk", serving_api.BulkResolveView.as_view(), name="resolve-bulk"),
    path("environments/<slug:env>/snapshot", serving_api.SnapshotView.as_view(), name="environment-snapshot"),
    path("environments/<slug:env>/stream", serving_stream.StreamView.as_view(), name="environment-stream"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema", permission_classes=[]), name="docs"),
    path("environments/", flags_api.EnvironmentsView.as_view(), name="environments"),
    path("flags/", flags_api.FlagsView.as_view(), name="flags"),
    path("flags/<slug:key>/", flags_api.FlagDetailView.as_view(), name="flag"),
    path("flags/<slug:key>/archive/", flags_api.FlagArchiveView.as_view(), name="flag-archive"),
    path("flags/<slug:key>/versions/", flags_api.VersionsView.as_view(), name="versions"),
    path("flags/<slug:key>/versions/validate/", flags_api.ValidateView.as_view(), name="versions-validate"),
    path("flags/<slug:key>/versions/<int:number>/", flags_api.VersionDetailView.as_view(), name="version"),
    path("flags/<slug:key>/diff/", flags_api.DiffView.as_view(), name="diff"),
    path(
        "flags/<slug:key>/environments/<slug:env>/publish/",
        flags_api.PublishView.as_view(),
        name="publish",
    ),
    path("flags/<slug:key>/environments/<slug:env>/enable/", flags_api.EnableView.as_view(), name="enable"),
    path(
        "flags/<slug:key>/environments/<slug:env>/disable/", flags_api.DisableView.as_view(), name="disable"
    ),
    path("segments/", flags_api.SegmentsView.as_view(), name="segments"),
    path("segments/<slug:key>/", flags_api.SegmentDetailView.as_view(), name="segment"),
    path("flags/<slug:key>/environments/<slug:env>/rules/", flags_api.RulesView.as_view(), name="rules"),
    path(
        "flags/<slug:key>/environments/<slug:env>/rules/<int:index>/",
        flags_api.RuleDetailView.as_view(),
        name="rule",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/rules/<int:index>/move/",
        flags_api.RuleMoveView.as_view(),
        name="rule-move",
    ),
    path("flags/<slug:key>/environments/<slug:env>/split/", flags_api.SplitView.as_view(), name="split"),
    path("flags/<slug:key>/environments/<slug:env>/try/", flags_api.TryView.as_view(), name="try"),
    path("flags/<slug:key>/budgets/", budgets_api.FlagBudgetsView.as_view(), name="flag-budgets"),
    path("incidents/", budgets_api.IncidentsView.as_view(), name="incidents"),
    path("incidents/<int:pk>/", budgets_api.IncidentDetailView.as_view(), name="incident"),
    path("incidents/<int:pk>/resolve/", budgets_api.IncidentResolveView.as_view(), name="incident-resolve"),
    path("webhooks/", budgets_api.WebhooksView.as_view(), name="webhooks"),
    path("webhooks/<int:pk>/", budgets_api.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<int:pk>/deliveries/",
        budgets_api.WebhookDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
    path("telemetry/calls", telemetry_calls_api.CallsView.as_view(), name="telemetry-calls"),
    path("audit/", core_api.AuditListView.as_view(), name="audit"),
    path("audit/export/", core_api.AuditExportView.as_view(), name="audit-export"),
    path("audit/verify/", core_api.AuditVerifyView.as_view(), name="audit-verify"),
    path("models/", flags_api.ModelsView.as_view(), name="models"),
    path("config-schema/", flags_api.ConfigSchemaView.as_view(), name="config-schema"),
    path("", include("evals.api.urls")),
]
