"""REST API of the evals app: thin views over evals.services.

- `gate`: a flag's gate policy, its verdicts, judging a version, and an Approver's override.
"""
