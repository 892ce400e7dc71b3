"""Routes of the evals API; controlplane/api_urls.py includes them under the `api` namespace."""

from django.urls import path

from evals.api import gate

urlpatterns = [
    path("flags/<slug:key>/gate/", gate.GateView.as_view(), name="flag-gate"),
    path("flags/<slug:key>/gate/evaluate/", gate.GateEvaluateView.as_view(), name="flag-gate-evaluate"),
    path(
        "flags/<slug:key>/gate/verdicts/<int:verdict_id>/override/",
        gate.GateOverrideView.as_view(),
        name="flag-gate-override",
    ),
]
