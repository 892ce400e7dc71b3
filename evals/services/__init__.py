"""Every write of the evals app, one area per module.

- `gate`: the gate policy, verdicts with their evidence, overrides, and the publishing check.
"""
