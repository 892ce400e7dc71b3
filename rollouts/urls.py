"""Pages of the rollouts app."""

from django.urls import path

from rollouts.views import (
    checklist,
    controls,
    experiments,
    paired_replay,
    rollback,
    rollouts,
    scheduling,
    timeline,
)

app_name = "rollouts"

# The checklist block's forms, on a rollout's page and on an experiment's (rollouts/views/checklist.py).
CHECKLIST_FORMS = [
    path(f"{kind}s/<int:pk>/{suffix}", view, {"kind": kind}, name=f"{kind}-{name}")
    for kind in ("rollout", "experiment")
    for suffix, view, name in (
        ("start/", checklist.start, "start"),
        ("checklist/<slug:item>/attest/", checklist.attest, "attest"),
        ("checklist/<slug:item>/waive/", checklist.waive, "waive"),
    )
]

# The controls block's buttons (rollouts/views/controls.py): pause, resume, promote, abort, ...
CONTROL_FORMS = [
    path(f"{kind}s/<int:pk>/{verb}/", controls.apply, {"kind": kind, "verb": verb}, name=f"{kind}-{verb}")
    for kind, verb in controls.VERB_PATHS
]

urlpatterns = [
    path("rollouts/", rollouts.rollout_list, name="list"),
    path("rollouts/new/", rollouts.rollout_create, name="create"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="detail"),
    path("flags/<slug:key>/environments/<slug:env>/rollback/", rollback.rollback, name="rollback"),
    path("flags/<slug:key>/environments/<slug:env>/rehearsals/", rollback.rehearsal_list, name="rehearsals"),
    path("flags/<slug:key>/environments/<slug:env>/rehearsals/run/", rollback.rehearse, name="rehearse"),
    path(
        "flags/<slug:key>/environments/<slug:env>/rehearsals/schedule/",
        rollback.schedule,
        name="rehearsal-schedule",
    ),
    path("rollouts/<int:pk>/rollback/", rollouts.rollout_rollback, name="rollout-rollback"),
    path("rollouts/<int:pk>/paired-replay/", paired_replay.rollout_paired_replay, name="paired-replay"),
    path("experiments/", experiments.experiment_list, name="experiments"),
    path("experiments/new/", experiments.experiment_create, name="experiment-create"),
    path("experiments/<int:pk>/", experiments.experiment_detail, name="experiment"),
    *CHECKLIST_FORMS,
    *CONTROL_FORMS,
    path("scheduled-changes/", scheduling.scheduled_list, name="scheduled"),
    path("scheduled-changes/<int:pk>/cancel/", scheduling.scheduled_cancel, name="scheduled-cancel"),
    path("timeline/", timeline.timeline, name="timeline"),
]
