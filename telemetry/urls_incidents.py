"""Pages for incidents, webhooks and per-flag budgets (namespace "incidents")."""

from django.urls import path

from telemetry import views_incidents as views

app_name = "incidents"

urlpatterns = [
    path("incidents/", views.incident_list, name="list"),
    path("incidents/<int:pk>/", views.incident_detail, name="detail"),
    path("incidents/<int:pk>/resolve/", views.incident_resolve, name="resolve"),
    path("webhooks/", views.webhook_list, name="webhooks"),
    path("webhooks/<int:pk>/", views.webhook_detail, name="webhook"),
    path(
        "webhooks/<int:pk>/deactivate/",
        views.webhook_set_active,
        {"active": False},
        name="webhook-deactivate",
    ),
    path("webhooks/<int:pk>/activate/", views.webhook_set_active, {"active": True}, name="webhook-activate"),
    path("flags/<slug:key>/budgets/", views.flag_budgets, name="budgets"),
]
