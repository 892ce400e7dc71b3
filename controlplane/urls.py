"""The project's routes: each app's pages and API are included from the app's own url modules.

The API and OFREP come first: the serving paths carry nearly all the traffic and Django tries
patterns in order, so they are matched after two or three patterns, not a hundred.
"""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from controlplane import views
from controlplane.forms import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm
from flags.api.urls import ofrep_patterns

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/", include("controlplane.api_urls")),
    path("ofrep/v1/", include(ofrep_patterns)),
    path("", include("flags.urls")),
    path("", include("controlplane.ui_urls")),
    path("", include("telemetry.urls")),
    path("", include("evals.urls")),
    path("", include("rollouts.urls")),
    path("", include("deprecations.urls")),
    path("", include("autopilot.urls")),
    path(
        "login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

admin.site.login_form = ThrottledAdminAuthenticationForm

handler403 = "controlplane.views.permission_denied"
handler404 = "controlplane.views.not_found"
handler500 = "controlplane.views.server_error"
