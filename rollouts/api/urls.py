"""Routes of the rollouts API, included by controlplane/api_urls.py under the `api` namespace."""

from django.urls import path

from rollouts.api import rollouts

urlpatterns = [
    path("rollouts/", rollouts.RolloutsView.as_view(), name="rollouts"),
    path("rollouts/<int:pk>/", rollouts.RolloutDetailView.as_view(), name="rollout"),
    path("rollouts/<int:pk>/start/", rollouts.StartView.as_view(), name="rollout-start"),
    path("rollouts/<int:pk>/pause/", rollouts.PauseView.as_view(), name="rollout-pause"),
    path("rollouts/<int:pk>/resume/", rollouts.ResumeView.as_view(), name="rollout-resume"),
    path("rollouts/<int:pk>/promote/", rollouts.PromoteView.as_view(), name="rollout-promote"),
    path("rollouts/<int:pk>/rollback/", rollouts.RollbackView.as_view(), name="rollout-rollback"),
    path("rollouts/<int:pk>/abort/", rollouts.AbortView.as_view(), name="rollout-abort"),
    path("rollouts/<int:pk>/decisions/", rollouts.DecisionsView.as_view(), name="rollout-decisions"),
]
