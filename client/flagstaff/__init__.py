"""Flagstaff client: local resolution of Claude configs and Messages API request rendering.

`Flagstaff` resolves flags from a snapshot of one environment; `fs.messages.create(...)`
(flagstaff.messages, needs the `anthropic` extra) calls Claude with the resolved config and
sends telemetry through a `TelemetrySender`. client/README.md, "Client".
"""

from flagstaff.client import Flagstaff, RollbackRefused
from flagstaff.resolved import FlagUnavailable, ResolvedConfig
from flagstaff.snapshot import Snapshot, SnapshotError
from flagstaff.telemetry import TelemetrySender, TelemetryStats

__all__ = [
    "FlagUnavailable",
    "Flagstaff",
    "ResolvedConfig",
    "RollbackRefused",
    "Snapshot",
    "SnapshotError",
    "TelemetrySender",
    "TelemetryStats",
]
