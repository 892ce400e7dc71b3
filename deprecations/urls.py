"""Pages of the deprecations app."""

from django.urls import path

from deprecations import views

app_name = "deprecations"

urlpatterns = [
    path("deprecations/", views.deprecations, name="list"),
]
