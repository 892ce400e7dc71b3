from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from controlplane import views

urlpatterns = [
    path("", include("flags.urls")),
    path("", include("controlplane.ui_urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("controlplane.api_urls")),
]

handler404 = "controlplane.views.not_found"
handler500 = "controlplane.views.server_error"
