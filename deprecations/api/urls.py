"""Routes of the deprecations API, included by controlplane/api_urls.py under the `api` namespace."""

from django.urls import path

from deprecations.api import deprecations

urlpatterns = [
    path("deprecations/", deprecations.DeprecationsView.as_view(), name="deprecations"),
]
