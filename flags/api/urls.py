"""Routes of the flags API, included by `controlplane.api_urls` under the "api" namespace.

The serving routes come first: they carry nearly all the traffic, and Django tries patterns
in order. OFREP's routes live here too (`ofrep_patterns`), mounted by the project at /ofrep/v1/.
"""

from django.urls import path

from flags.api import approvals, catalog, flags, publishing, segments, targeting, versions
from flags.serving import ofrep, resolve, stream

urlpatterns = [
    path("resolve", resolve.ResolveView.as_view(), name="resolve"),
    path("resolve/bulk", resolve.BulkResolveView.as_view(), name="resolve-bulk"),
    path("environments/<slug:env>/snapshot", resolve.SnapshotView.as_view(), name="environment-snapshot"),
    path("environments/<slug:env>/stream", stream.StreamView.as_view(), name="environment-stream"),
    path("environments/", flags.EnvironmentsView.as_view(), name="environments"),
    path("environments/<slug:env>/", flags.EnvironmentDetailView.as_view(), name="environment"),
    path("flags/", flags.FlagsView.as_view(), name="flags"),
    path("flags/<slug:key>/", flags.FlagDetailView.as_view(), name="flag"),
    path("flags/<slug:key>/archive/", flags.FlagArchiveView.as_view(), name="flag-archive"),
    path("flags/<slug:key>/versions/", versions.VersionsView.as_view(), name="versions"),
    path("flags/<slug:key>/versions/validate/", versions.ValidateView.as_view(), name="versions-validate"),
    path("flags/<slug:key>/versions/<int:number>/", versions.VersionDetailView.as_view(), name="version"),
    path("flags/<slug:key>/diff/", versions.DiffView.as_view(), name="diff"),
    path(
        "flags/<slug:key>/environments/<slug:env>/publish/",
        publishing.PublishView.as_view(),
        name="publish",
    ),
    path("flags/<slug:key>/environments/<slug:env>/enable/", publishing.EnableView.as_view(), name="enable"),
    path(
        "flags/<slug:key>/environments/<slug:env>/disable/", publishing.DisableView.as_view(), name="disable"
    ),
    path("segments/", segments.SegmentsView.as_view(), name="segments"),
    path("segments/<slug:key>/", segments.SegmentDetailView.as_view(), name="segment"),
    path("flags/<slug:key>/environments/<slug:env>/rules/", targeting.RulesView.as_view(), name="rules"),
    path(
        "flags/<slug:key>/environments/<slug:env>/rules/<int:index>/",
        targeting.RuleDetailView.as_view(),
        name="rule",
    ),
    path(
        "flags/<slug:key>/environments/<slug:env>/rules/<int:index>/move/",
        targeting.RuleMoveView.as_view(),
        name="rule-move",
    ),
    path("flags/<slug:key>/environments/<slug:env>/split/", targeting.SplitView.as_view(), name="split"),
    path("flags/<slug:key>/environments/<slug:env>/try/", targeting.TryView.as_view(), name="try"),
    path("models/", catalog.ModelsView.as_view(), name="models"),
    path("config-schema/", catalog.ConfigSchemaView.as_view(), name="config-schema"),
    path("approvals/", approvals.ApprovalsView.as_view(), name="approvals"),
    path("approvals/<int:pk>/", approvals.ApprovalDetailView.as_view(), name="approval"),
    path("approvals/<int:pk>/approve/", approvals.ApproveView.as_view(), name="approval-approve"),
    path("approvals/<int:pk>/reject/", approvals.RejectView.as_view(), name="approval-reject"),
    path("approvals/<int:pk>/cancel/", approvals.CancelView.as_view(), name="approval-cancel"),
]

# OFREP 0.3.0; the provider posts to these paths without a trailing slash.
ofrep_patterns = [
    path("evaluate/flags", ofrep.EvaluateFlagsView.as_view(), name="ofrep-evaluate-flags"),
    path("evaluate/flags/<str:key>", ofrep.EvaluateFlagView.as_view(), name="ofrep-evaluate-flag"),
]
