"""Pages of the evals app, one module per area."""
