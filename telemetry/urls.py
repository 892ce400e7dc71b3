"""Pages of the telemetry app, one list per area under the namespace its templates reverse.

The project's urls include this module once; each area keeps its own namespace
("telemetry" for the dashboards, "incidents" for incidents, webhooks and budgets, "usage" for
the Admin API sync), so every `{% url %}` name is the same as when they were separate modules.
"""

from django.urls import URLPattern, URLResolver, include, path

from telemetry.views import dashboards, incidents, usage

dashboard_patterns = [
    path("telemetry/", dashboards.overview, name="overview"),
    path("telemetry/flags/<slug:key>/", dashboards.flag_dashboard, name="flag"),
]

incident_patterns = [
    path("incidents/", incidents.incident_list, name="list"),
    path("incidents/<int:pk>/", incidents.incident_detail, name="detail"),
    path("incidents/<int:pk>/resolve/", incidents.incident_resolve, name="resolve"),
    path("webhooks/", incidents.webhook_list, name="webhooks"),
    path("webhooks/<int:pk>/", incidents.webhook_detail, name="webhook"),
    path(
        "webhooks/<int:pk>/deactivate/",
        incidents.webhook_set_active,
        {"active": False},
        name="webhook-deactivate",
    ),
    path(
        "webhooks/<int:pk>/activate/", incidents.webhook_set_active, {"active": True}, name="webhook-activate"
    ),
    path("flags/<slug:key>/budgets/", incidents.flag_budgets, name="budgets"),
]

usage_patterns = [
    path("usage/", usage.usage_status, name="status"),
    path("usage/console/", usage.console_usage, name="console"),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include((dashboard_patterns, "telemetry"))),
    path("", include((incident_patterns, "incidents"))),
    path("", include((usage_patterns, "usage"))),
]
