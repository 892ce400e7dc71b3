"""The evals REST API, one module per area; routes in `evals.api.urls`."""
