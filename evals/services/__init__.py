"""Every write of the evals app, one area per module; each validates and records its audit entry.

- `eval_sets`: eval sets and their immutable versions (from cases, files or sampled calls).
- `calibration`: human labels of a judge, its verdicts on them, and its κ calibration.
- `runs`, `gate`, `live_scoring`: eval runs, the gate, and the scoring of live traffic.
- `comparisons`: the cheapest-that-passes comparison's writes (run the missing, judge all).

Callers import from the area module (`from evals.services import eval_sets`).
"""
