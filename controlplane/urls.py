from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from controlplane import views
from flags import ofrep

# The API and OFREP come first: the serving paths carry nearly all the traffic and Django tries
# patterns in order, so they are matched after two or three patterns, not a hundred.
urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/", include("controlplane.api_urls")),
    # OFREP 0.3.0; the provider posts to these paths without a trailing slash.
    path("ofrep/v1/evaluate/flags", ofrep.EvaluateFlagsView.as_view(), name="ofrep-evaluate-flags"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.EvaluateFlagView.as_view(), name="ofrep-evaluate-flag"),
    path("", include("flags.urls")),
    path("", include("controlplane.ui_urls")),
    path("", include("telemetry.urls")),
    path("", include("telemetry.urls_incidents")),
    path("", include("telemetry.urls_usage")),
    path("", include("evals.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

handler404 = "controlplane.views.not_found"
handler500 = "controlplane.views.server_error"
