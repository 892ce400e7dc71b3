"""Routes of the rollouts API, included by controlplane/api_urls.py under the `api` namespace."""

from django.urls import path

from rollouts.api import checklist, experiments, paired_replay, rehearsals, rollback, rollouts, scheduling

urlpatterns = [
    path(
        "flags/<slug:key>/environments/<slug:env>/rollback/",
        rollback.RollbackView.as_view(),
        name="flag-rollback",
    ),
    path("rehearsals/", rehearsals.RehearsalsView.as_view(), name="rehearsals"),
    path("rehearsals/<int:pk>/", rehearsals.RehearsalDetailView.as_view(), name="rehearsal"),
    path("rehearsal-schedules/", rehearsals.SchedulesView.as_view(), name="rehearsal-schedules"),
    path("rehearsal-schedules/<int:pk>/", rehearsals.ScheduleDetailView.as_view(), name="rehearsal-schedule"),
    path("rollouts/", rollouts.RolloutsView.as_view(), name="rollouts"),
    path("rollouts/<int:pk>/", rollouts.RolloutDetailView.as_view(), name="rollout"),
    path("rollouts/<int:pk>/start/", rollouts.StartView.as_view(), name="rollout-start"),
    path("rollouts/<int:pk>/pause/", rollouts.PauseView.as_view(), name="rollout-pause"),
    path("rollouts/<int:pk>/resume/", rollouts.ResumeView.as_view(), name="rollout-resume"),
    path("rollouts/<int:pk>/promote/", rollouts.PromoteView.as_view(), name="rollout-promote"),
    path("rollouts/<int:pk>/rollback/", rollouts.RollbackView.as_view(), name="rollout-rollback"),
    path("rollouts/<int:pk>/abort/", rollouts.AbortView.as_view(), name="rollout-abort"),
    path("rollouts/<int:pk>/decisions/", rollouts.DecisionsView.as_view(), name="rollout-decisions"),
    path(
        "rollouts/<int:pk>/paired-replay/",
        paired_replay.PairedReplayView.as_view(),
        name="rollout-paired-replay",
    ),
    path("experiments/", experiments.ExperimentsView.as_view(), name="experiments"),
    path("experiments/<int:pk>/", experiments.ExperimentDetailView.as_view(), name="experiment"),
    path("experiments/<int:pk>/start/", experiments.StartView.as_view(), name="experiment-start"),
    path("experiments/<int:pk>/pause/", experiments.PauseView.as_view(), name="experiment-pause"),
    path("experiments/<int:pk>/resume/", experiments.ResumeView.as_view(), name="experiment-resume"),
    path("experiments/<int:pk>/abort/", experiments.AbortView.as_view(), name="experiment-abort"),
    path("experiments/<int:pk>/conclude/", experiments.ConcludeView.as_view(), name="experiment-conclude"),
    path(
        "experiments/<int:pk>/start-canary/",
        experiments.StartCanaryView.as_view(),
        name="experiment-start-canary",
    ),
    path("experiments/<int:pk>/decisions/", experiments.DecisionsView.as_view(), name="experiment-decisions"),
    path("rollouts/<int:pk>/checklist/", checklist.ChecklistView.as_view(), name="rollout-checklist"),
    path(
        "rollouts/<int:pk>/checklist/<slug:item>/attest/",
        checklist.AttestView.as_view(),
        name="rollout-checklist-attest",
    ),
    path(
        "rollouts/<int:pk>/checklist/<slug:item>/waive/",
        checklist.WaiveView.as_view(),
        name="rollout-checklist-waive",
    ),
    path(
        "experiments/<int:pk>/checklist/",
        checklist.ExperimentChecklistView.as_view(),
        name="experiment-checklist",
    ),
    path(
        "experiments/<int:pk>/checklist/<slug:item>/attest/",
        checklist.ExperimentAttestView.as_view(),
        name="experiment-checklist-attest",
    ),
    path(
        "experiments/<int:pk>/checklist/<slug:item>/waive/",
        checklist.ExperimentWaiveView.as_view(),
        name="experiment-checklist-waive",
    ),
    path("checklist-policies/", checklist.PoliciesView.as_view(), name="checklist-policies"),
    path("checklist-policies/<slug:env>/", checklist.PolicyView.as_view(), name="checklist-policy"),
    path("scheduled-changes/", scheduling.ScheduledChangesView.as_view(), name="scheduled-changes"),
    path("scheduled-changes/<int:pk>/", scheduling.ScheduledChangeView.as_view(), name="scheduled-change"),
    path(
        "scheduled-changes/<int:pk>/cancel/", scheduling.CancelView.as_view(), name="scheduled-change-cancel"
    ),
]
