"""Routes of the REST API, mounted at /api/v1/."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane import api as core_api
from flags import api as flags_api

app_name = "api"

urlpatterns = [
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
    path("audit/", core_api.AuditListView.as_view(), name="audit"),
    path("audit/export/", core_api.AuditExportView.as_view(), name="audit-export"),
    path("audit/verify/", core_api.AuditVerifyView.as_view(), name="audit-verify"),
    path("models/", flags_api.ModelsView.as_view(), name="models"),
    path("config-schema/", flags_api.ConfigSchemaView.as_view(), name="config-schema"),
]
