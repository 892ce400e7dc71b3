"""Pages of the evals app.

- `live_scores`: live scores per version and arm of a flag, and its judge budget today.
"""
