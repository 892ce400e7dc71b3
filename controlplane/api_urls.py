"""Routes of the REST API, mounted at /api/v1/ (namespace "api").

Each app routes its own API in `<app>/api/urls.py`; this module only includes them, flags
first (its serving routes carry nearly all the traffic, and Django tries patterns in order).
A new app adds one include line, in layer order, where the comment says.
"""

from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from controlplane import api as core_api

app_name = "api"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("flags.api.urls")),
    path("", include("telemetry.api.urls")),
    path("", include("evals.api.urls")),
    path("", include("rollouts.api.urls")),
    path("", include("deprecations.api.urls")),
    path("", include("autopilot.api.urls")),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    # The split view serves its start-up script as a file (?script): the CSP allows no inline script.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", permission_classes=[], template_name="controlplane/swagger_ui.html"
        ),
        name="docs",
    ),
    path("audit/", core_api.AuditListView.as_view(), name="audit"),
    path("audit/export/", core_api.AuditExportView.as_view(), name="audit-export"),
    path("audit/verify/", core_api.AuditVerifyView.as_view(), name="audit-verify"),
    path("users/", core_api.UsersView.as_view(), name="users"),
    path("users/<int:pk>/", core_api.UserView.as_view(), name="user"),
]
