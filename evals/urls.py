"""Pages of the evals app."""

from django.urls import path

from evals.views import runs

app_name = "evals"

urlpatterns = [
    path("evals/runs/", runs.run_list, name="runs"),
    path("evals/runs/<int:pk>/", runs.run_detail, name="run"),
    path("evals/runs/<int:pk>/cases/<int:position>/", runs.run_case, name="run-case"),
    path("evals/runs/<int:pk>/cancel/", runs.run_cancel, name="run-cancel"),
    path("evals/runs/<int:pk>/resume/", runs.run_resume, name="run-resume"),
]
