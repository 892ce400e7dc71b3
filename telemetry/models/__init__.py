"""Telemetry models; each concern in its own module, all registered here."""

from telemetry.models.calls import (
    KNOWN_STOP_REASONS,
    CallRecord,
    Rollup,
    RollupCount,
    RollupHistogram,
    Sample,
)
from telemetry.models.console_usage import ConsoleUsage, ConsoleUsageImport
from telemetry.models.incidents import (
    DeliveryState,
    Incident,
    IncidentKind,
    IncidentState,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from telemetry.models.usage_sync import (
    AdminReport,
    AdminSyncState,
    BucketWidth,
    CostBucket,
    SyncHealth,
    UsageBucket,
)

__all__ = [
    "KNOWN_STOP_REASONS",
    "AdminReport",
    "AdminSyncState",
    "BucketWidth",
    "CallRecord",
    "ConsoleUsage",
    "ConsoleUsageImport",
    "CostBucket",
    "DeliveryState",
    "Incident",
    "IncidentKind",
    "IncidentState",
    "Rollup",
    "RollupCount",
    "RollupHistogram",
    "Sample",
    "SyncHealth",
    "UsageBucket",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
]
