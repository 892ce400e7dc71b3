"""Pages of the autopilot app."""

from django.urls import path

from autopilot import views

app_name = "autopilot"

urlpatterns = [
    path("migrations/", views.migration_list, name="list"),
    path("migrations/<int:pk>/", views.migration_detail, name="detail"),
    path("migrations/<int:pk>/rerun-gate/", views.migration_rerun, name="rerun"),
    path("flags/<slug:key>/environments/<slug:env>/migrate/", views.migration_create, name="create"),
    path("migrations/settings/<slug:env>/", views.setting_change, name="setting"),
]
