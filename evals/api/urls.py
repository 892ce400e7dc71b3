"""Routes of the evals API, included at /api/v1/ (names in the `api` namespace)."""

from django.urls import path

from evals.api import runs

urlpatterns = [
    path("eval-runs/", runs.RunsView.as_view(), name="eval-runs"),
    path("eval-runs/<int:pk>/", runs.RunDetailView.as_view(), name="eval-run"),
    path("eval-runs/<int:pk>/cases/", runs.RunCasesView.as_view(), name="eval-run-cases"),
    path("eval-runs/<int:pk>/cancel/", runs.RunCancelView.as_view(), name="eval-run-cancel"),
    path("eval-runs/<int:pk>/resume/", runs.RunResumeView.as_view(), name="eval-run-resume"),
]
