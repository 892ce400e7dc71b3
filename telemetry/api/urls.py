"""Routes of the telemetry API, included by `controlplane.api_urls` under the "api" namespace."""

from django.urls import path

from telemetry.api import calls, incidents

urlpatterns = [
    path("telemetry/calls", calls.CallsView.as_view(), name="telemetry-calls"),
    path("flags/<slug:key>/budgets/", incidents.FlagBudgetsView.as_view(), name="flag-budgets"),
    path("incidents/", incidents.IncidentsView.as_view(), name="incidents"),
    path("incidents/<int:pk>/", incidents.IncidentDetailView.as_view(), name="incident"),
    path("incidents/<int:pk>/resolve/", incidents.IncidentResolveView.as_view(), name="incident-resolve"),
    path("webhooks/", incidents.WebhooksView.as_view(), name="webhooks"),
    path("webhooks/<int:pk>/", incidents.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<int:pk>/deliveries/", incidents.WebhookDeliveriesView.as_view(), name="webhook-deliveries"
    ),
]
