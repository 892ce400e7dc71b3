"""Pages of the rollouts app."""

from django.urls import path

from rollouts.views import rollouts

app_name = "rollouts"

urlpatterns = [
    path("rollouts/", rollouts.rollout_list, name="list"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="detail"),
]
