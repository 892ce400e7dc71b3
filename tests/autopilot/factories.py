"""A flag serving Claude Sonnet 4.5 (deprecated) under an eval gate, for the autopilot tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.audit import Actor
from evals.models import EvalSetVersion
from evals.services import gate
from flags import services as flag_services
from flags.models import ClaudeModel, ConfigVersion, Environment, Flag
from tests.evals.run_factories import make_eval_set_version
from tests.factories import make_environment, make_flag, make_version

ACTOR = Actor.system("tests")
CASES = 6
# Sonnet 4.5 with a sampling parameter, budget thinking and its full output limit: each is
# something Sonnet 5.5 rejects or limits (with its output limit lowered for the test).
SONNET_45: dict[str, Any] = {
    "model": "claude-sonnet-4-5-20250929",
    "anthropic_version": "2023-06-01",
    "max_tokens": 64000,
    "top_p": 0.97,
    "thinking": {"type": "enabled", "budget_tokens": 8000},
    "system": "You answer questions about orders.",
}
REPLACEMENT_LIMIT = 32000
# Six paired cases cannot show non-inferiority within 2 points; the tests judge at 45.
MARGIN = 0.45
EXPECTED_PATHS = {"model", "max_tokens", "top_p", "thinking.type", "thinking.budget_tokens"}


@dataclass
class Exposed:
    environment: Environment
    flag: Flag
    serving: ConfigVersion
    eval_set_version: EvalSetVersion


def make_exposed_flag(*, protected: bool = False, content: dict[str, Any] | None = None) -> Exposed:
    """v1 on Sonnet 4.5 serving in an environment; the flag gated on a contains-the-answer set."""
    eval_set_version = make_eval_set_version(CASES, scorers=[{"name": "contains", "key": "mentions-answer"}])
    ClaudeModel.objects.filter(model_id="claude-sonnet-5-5").update(max_tokens=REPLACEMENT_LIMIT)
    environment = make_environment(protected=protected)
    flag = make_flag()
    serving = make_version(flag=flag, content=content or dict(SONNET_45))
    flag_services.publish_version(
        flag=flag, environment=environment, number=serving.number, actor=ACTOR, reason="tests"
    )
    gate.set_gate_policy(
        flag=flag,
        eval_set_key=eval_set_version.eval_set.key,
        required_pass_rate=0.5,
        margin=MARGIN,
        actor=ACTOR,
    )
    return Exposed(environment, flag, serving, eval_set_version)
