"""Pages of the rollouts app."""

from django.urls import path

from rollouts.views import experiments, rollback, rollouts

app_name = "rollouts"

urlpatterns = [
    path("rollouts/", rollouts.rollout_list, name="list"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="detail"),
    path("flags/<slug:key>/environments/<slug:env>/rollback/", rollback.rollback, name="rollback"),
    path("flags/<slug:key>/environments/<slug:env>/rehearsals/", rollback.rehearsal_list, name="rehearsals"),
    path("flags/<slug:key>/environments/<slug:env>/rehearsals/run/", rollback.rehearse, name="rehearse"),
    path(
        "flags/<slug:key>/environments/<slug:env>/rehearsals/schedule/",
        rollback.schedule,
        name="rehearsal-schedule",
    ),
    path("experiments/", experiments.experiment_list, name="experiments"),
    path("experiments/<int:pk>/", experiments.experiment_detail, name="experiment"),
]
