"""Pages of the rollouts app."""

from django.urls import path

from rollouts.views import experiments, rollouts, scheduling, timeline

app_name = "rollouts"

urlpatterns = [
    path("rollouts/", rollouts.rollout_list, name="list"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="detail"),
    path("experiments/", experiments.experiment_list, name="experiments"),
    path("experiments/<int:pk>/", experiments.experiment_detail, name="experiment"),
    path("scheduled-changes/", scheduling.scheduled_list, name="scheduled"),
    path("scheduled-changes/<int:pk>/cancel/", scheduling.scheduled_cancel, name="scheduled-cancel"),
    path("timeline/", timeline.timeline, name="timeline"),
]
