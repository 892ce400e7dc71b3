"""Pages of the evals app."""

from django.urls import path

from evals.views import calibration, comparisons, eval_sets, gate, live_scores, runs

app_name = "evals"

urlpatterns = [
    path("eval-sets/", eval_sets.eval_set_list, name="list"),
    path("eval-sets/<slug:key>/", eval_sets.eval_set_detail, name="detail"),
    path("eval-sets/<slug:key>/import/", eval_sets.eval_set_import, name="import"),
    path("eval-sets/<slug:key>/samples/", eval_sets.eval_set_samples, name="samples"),
    path("eval-sets/<slug:key>/versions/<int:number>/edit/", eval_sets.version_edit, name="version-edit"),
    path("eval-sets/<slug:key>/versions/<int:number>/export/", eval_sets.eval_set_export, name="export"),
    path("judges/", calibration.judge_list, name="judges"),
    path("judges/<slug:key>/", calibration.judge_calibration, name="calibration"),
    path("judges/<slug:key>/calibrate/", calibration.judge_calibrate, name="calibrate"),
    path("judges/<slug:key>/labels/import/", calibration.judge_labels_import, name="labels-import"),
    path(
        "judges/<slug:key>/labels/<slug:eval_set_key>/<int:number>/",
        calibration.judge_label,
        name="label",
    ),
    path("eval-runs/", runs.run_list, name="runs"),
    path("eval-runs/start/", runs.run_start, name="run-start"),
    path("eval-runs/<int:pk>/", runs.run_detail, name="run"),
    path("eval-runs/<int:pk>/cases/<int:position>/", runs.run_case, name="run-case"),
    path("eval-runs/<int:pk>/cancel/", runs.run_cancel, name="run-cancel"),
    path("eval-runs/<int:pk>/resume/", runs.run_resume, name="run-resume"),
    path("flags/<slug:key>/live-scores/", live_scores.flag_live_scores, name="live-scores"),
    path("flags/<slug:key>/compare/", comparisons.flag_comparison, name="comparison"),
    path("flags/<slug:key>/compare/runs/", comparisons.comparison_runs, name="comparison-runs"),
    path("flags/<slug:key>/compare/judge/", comparisons.comparison_judge, name="comparison-judge"),
    path("flags/<slug:key>/compare/publish/", comparisons.comparison_publish, name="comparison-publish"),
    path("flags/<slug:key>/versions/<int:number>/evals/", gate.version_evals, name="version-evals"),
    path(
        "flags/<slug:key>/versions/<int:number>/evals/judge/<slug:env>/",
        gate.version_judge,
        name="version-judge",
    ),
]
