"""The checklist items no data can show: a person ticks each with a note (name and time kept)."""

from rollouts.checklist.items import attested

attested(
    "tools_deliberate",
    "Tools deliberate (destructive operations denied)",
    "Every tool is there on purpose; destructive operations are denied or need confirmation.",
)
attested(
    "pattern_chosen",
    "Pattern chosen by the decision tree",
    "Single call, workflow or agent was chosen by the decision tree, not by habit.",
)
attested(
    "skills_harness",
    "Skills and harness chosen",
    "The skills loaded and the harness running them were chosen for this workload.",
)
attested(
    "primitive_per_workload",
    "Primitive per workload",
    "Each workload uses the right primitive (Messages, Batches, streaming, tool runner).",
)
attested(
    "context_management",
    "Context-management posture",
    "How the context is kept within the window (editing, compaction, memory) is decided.",
)
attested(
    "deprecation_notifications",
    "Deprecation notifications subscribed",
    "Someone receives Anthropic's model deprecation notices for this model.",
)
