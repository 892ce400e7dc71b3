"""Every write of the rollouts app, one area per module; each validates and records its audit entry.

- `lifecycle`: creating a rollout and its state machine (start, pause, resume, promote,
  rollback, abort, supersede), every transition a compare-and-set on the rollout's version.
- `ticks`: the analysis tick: claim a due rollout's tick, decide, record the Decision, act.
- `scheduling`: scheduled changes (publish, enable/disable, rollout start, split): scheduling,
  cancelling, and applying each once when due, or skipping it with the reason.

Callers import from the area module (`from rollouts.services import lifecycle`).
"""
