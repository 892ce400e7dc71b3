"""Routes of the autopilot API, included by controlplane/api_urls.py under the `api` namespace."""

from django.urls import path

from autopilot.api import migrations

urlpatterns = [
    path("migrations/", migrations.MigrationsView.as_view(), name="migrations"),
    path("migrations/<int:pk>/", migrations.MigrationDetailView.as_view(), name="migration"),
    path("migrations/<int:pk>/rerun-gate/", migrations.RerunGateView.as_view(), name="migration-rerun-gate"),
]
