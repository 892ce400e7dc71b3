"""Telemetry ingest's C speedups (telemetry/_speedups.c), when they were built.

`pip install` compiles them where a C compiler and Python's headers are at hand (setup.py
marks the extension optional); elsewhere `speedups` is None and ingest runs its Python loop
and psycopg's row formatter, which give the same rows and bytes, slower
(tests/telemetry/test_speedups.py runs both).
"""

from __future__ import annotations

import logging
from types import ModuleType

from telemetry.records import CallInput, CallRow

logger = logging.getLogger(__name__)


def _load() -> ModuleType | None:
    try:
        from telemetry import _speedups
    except ImportError:
        return None
    # The C reads calls and builds rows by position: a build that names other fields than
    # CallInput and CallRow (stale, or _speedups.c not changed with them) must not be used.
    if CallInput._fields != _speedups.CALL_FIELDS or CallRow._fields != _speedups.ROW_FIELDS:
        logger.warning("telemetry/_speedups.c does not match CallInput and CallRow; ingest runs its Python")
        return None
    return _speedups


speedups = _load()
