"""The deploy checklist of a rollout or an experiment: the seed's closing checklist, treated as a
deploy gate rather than an aspiration.

- `items`: the registry. Each item is computed from the data where the data exists (a function
  of the `Subject` answering pass, fail or not applicable, with a sentence saying why) or
  attested by a person with a note. Apps and branches add items with `register`.
- `computed`: the computed items (eval gate, streaming, request ids, stop reasons, prompt
  caching, effort, agent limits, budgets, cost dashboards, model lifecycle).
- `board`: the checklist of one rollout or experiment as pages and the API show it: each item's
  state with its attestation or waiver, which items the environment's policy requires, and the
  red ones that refuse a start.

The writes (attest, waive, set a policy) are rollouts/services/checklist.py.
"""

from rollouts.checklist.board import Board, Row, board_for, board_of, default_required, required_items
from rollouts.checklist.items import ITEMS, Item, Kind, Subject, Verdict, register

__all__ = [
    "ITEMS",
    "Board",
    "Item",
    "Kind",
    "Row",
    "Subject",
    "Verdict",
    "board_for",
    "board_of",
    "default_required",
    "register",
    "required_items",
]
