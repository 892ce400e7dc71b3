"""Routes of the evals API, included by controlplane/api_urls.py under the `api` namespace."""

from django.urls import path

from evals.api import calibration, comparisons, eval_sets, gate, runs

urlpatterns = [
    path("eval-sets/", eval_sets.EvalSetsView.as_view(), name="eval-sets"),
    path("eval-sets/<slug:key>/", eval_sets.EvalSetDetailView.as_view(), name="eval-set"),
    path("eval-sets/<slug:key>/import/", eval_sets.ImportView.as_view(), name="eval-set-import"),
    path("eval-sets/<slug:key>/versions/", eval_sets.VersionsView.as_view(), name="eval-set-versions"),
    path(
        "eval-sets/<slug:key>/versions/<int:number>/",
        eval_sets.VersionDetailView.as_view(),
        name="eval-set-version",
    ),
    path(
        "eval-sets/<slug:key>/versions/<int:number>/cases/",
        eval_sets.CasesView.as_view(),
        name="eval-set-cases",
    ),
    path(
        "eval-sets/<slug:key>/versions/<int:number>/export/",
        eval_sets.ExportView.as_view(),
        name="eval-set-export",
    ),
    path("judges/<slug:key>/calibration/", calibration.CalibrationView.as_view(), name="judge-calibration"),
    path("judges/<slug:key>/labels/", calibration.LabelsImportView.as_view(), name="judge-labels"),
    path("eval-runs/", runs.RunsView.as_view(), name="eval-runs"),
    path("eval-runs/<int:pk>/", runs.RunDetailView.as_view(), name="eval-run"),
    path("eval-runs/<int:pk>/cases/", runs.RunCasesView.as_view(), name="eval-run-cases"),
    path("eval-runs/<int:pk>/cancel/", runs.RunCancelView.as_view(), name="eval-run-cancel"),
    path("eval-runs/<int:pk>/resume/", runs.RunResumeView.as_view(), name="eval-run-resume"),
    path("flags/<slug:key>/gate/", gate.GateView.as_view(), name="flag-gate"),
    path("flags/<slug:key>/comparison/", comparisons.ComparisonView.as_view(), name="flag-comparison"),
    path("flags/<slug:key>/gate/evaluate/", gate.GateEvaluateView.as_view(), name="flag-gate-evaluate"),
    path(
        "flags/<slug:key>/gate/verdicts/<int:verdict_id>/override/",
        gate.GateOverrideView.as_view(),
        name="flag-gate-override",
    ),
]
