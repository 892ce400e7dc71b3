"""Pages of the rollouts app."""

from django.urls import path

from rollouts.views import checklist, experiments, rollouts

app_name = "rollouts"

urlpatterns = [
    path("rollouts/", rollouts.rollout_list, name="list"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="detail"),
    path("rollouts/<int:pk>/start/", checklist.rollout_start, name="rollout-start"),
    path("rollouts/<int:pk>/checklist/<slug:item>/attest/", checklist.rollout_attest, name="rollout-attest"),
    path("rollouts/<int:pk>/checklist/<slug:item>/waive/", checklist.rollout_waive, name="rollout-waive"),
    path("experiments/", experiments.experiment_list, name="experiments"),
    path("experiments/<int:pk>/start/", checklist.experiment_start, name="experiment-start"),
    path(
        "experiments/<int:pk>/checklist/<slug:item>/attest/",
        checklist.experiment_attest,
        name="experiment-attest",
    ),
    path(
        "experiments/<int:pk>/checklist/<slug:item>/waive/",
        checklist.experiment_waive,
        name="experiment-waive",
    ),
    path("experiments/<int:pk>/", experiments.experiment_detail, name="experiment"),
]
