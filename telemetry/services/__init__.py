"""Telemetry writes, one module per concern (ingest, budgets, usage sync)."""
