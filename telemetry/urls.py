"""Telemetry dashboards (namespace "telemetry")."""

from django.urls import path

from telemetry import views

app_name = "telemetry"

urlpatterns = [
    path("telemetry/", views.overview, name="overview"),
    path("telemetry/flags/<slug:key>/", views.flag_dashboard, name="flag"),
]
