"""Pages of the rollouts app."""

from django.urls import path

from rollouts.views import experiments, rollouts

app_name = "rollouts"

urlpatterns = [
    path("rollouts/", rollouts.rollout_list, name="list"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="detail"),
    path("rollouts/<int:pk>/rollback/", rollouts.rollout_rollback, name="rollback"),
    path("experiments/", experiments.experiment_list, name="experiments"),
    path("experiments/<int:pk>/", experiments.experiment_detail, name="experiment"),
]
