"""Telemetry models; each concern in its own module, all registered here."""
