"""The stream process's routes (controlplane.asgi): the change stream and the health check."""

from django.urls import URLPattern, path

from controlplane import views
from flags.serving import fanout

urlpatterns: list[URLPattern] = [
    path("api/v1/environments/<slug:env>/stream", fanout.stream, name="environment-stream"),
    path("healthz", views.healthz, name="healthz"),
]
