"""The Usage & Cost Admin API status page (namespace "usage")."""

from django.urls import path

from telemetry import views_usage as views

app_name = "usage"

urlpatterns = [
    path("usage/", views.usage_status, name="status"),
]
