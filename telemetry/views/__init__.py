"""Pages of the telemetry app (HTML/htmx function-based views), one submodule per area:

- `dashboards`: the overview and a flag's dashboard (latency, cost, errors over time).
- `incidents`: incidents, webhooks and per-flag budgets.
- `usage`: the Usage & Cost Admin API page: sync status, organisation spend and the reconciliation.
"""
