"""Telemetry REST API, one module per concern."""
