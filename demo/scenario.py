"""The demo's scripted world, shared by `make demo` and the end-to-end rollout test.

A support chat answers questions; 15 % of them are "long" (their scripted answer runs for
about 170 tokens), the rest short. The live scorer passes an answer that ends with its
conclusion (`ANSWER: done.`). The baseline answers everything whole. The regressing candidate
lowers `max_tokens` to 60, so the fake API cuts every long answer short (stop reason
`max_tokens`) and it fails the scorer on 15 % more calls; its eval set has only short questions,
so it passes the gate and only live traffic shows the regression. The healthy candidate moves to
a cheaper model and answers as the baseline does.
"""

from __future__ import annotations

from typing import Any

from demo.fake_anthropic import FakeAnthropic

FLAG = "support-chat"
SURFACE = "chat"
EVAL_SET = "support-chat-regression"
SCORER_KEY = "complete"

LONG, SHORT = "[long]", "[short]"  # markers in the question the fake's script keys on
CONCLUSION = "ANSWER: done."
LONG_ANSWER = "Here is the whole procedure, step by step. " * 15 + CONCLUSION
LONG_SHARE_IN_20 = 3  # 3 questions in 20 (15 %) are long

BASELINE: dict[str, Any] = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 1024,
    "system": "You answer questions about our product.",
}
REGRESSING = BASELINE | {"max_tokens": 60}  # 240 characters: the long answers are cut
HEALTHY = BASELINE | {"model": "claude-haiku-5-5"}
VERSIONS: tuple[tuple[dict[str, Any], str], ...] = (
    (BASELINE, "Support chat on Sonnet"),
    (REGRESSING, "Shorter answers: max_tokens 1024 -> 60"),
    (HEALTHY, "Same prompt on Haiku, cheaper"),
)
BASELINE_VERSION, REGRESSING_VERSION, HEALTHY_VERSION = 1, 2, 3

SCORER: dict[str, Any] = {"name": "regex", "key": SCORER_KEY, "params": {"pattern": r"ANSWER: done\.$"}}

# The guardrails both rollouts act on: the live pass rate within 2 points and the API error
# rate within 1 point, both critical (a regression rolls back at once).
POLICY: list[dict[str, Any]] = [
    {"metric": "live_pass_rate", "scorer": SCORER_KEY, "margin": 0.02, "critical": True},
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
]


def stages(*, min_duration_seconds: int, min_per_arm: int) -> list[dict[str, Any]]:
    """A compressed plan: 10 % then 50 % (the widest stage that keeps a control arm), then all.

    The 10 % first stage puts a fifth of the users in the analysis (canary and control) where 1 %
    puts a fiftieth; the analysis and its levels are the same.
    """
    analysed = {
        "min_duration_seconds": min_duration_seconds,
        "max_duration_seconds": 3600,
        "min_units_per_arm": min_per_arm,
        "min_judged_per_arm": min_per_arm,
    }
    return [{"weight": 1_000, **analysed}, {"weight": 5_000, **analysed}, {"weight": 10_000}]


def question(unit: int) -> str:
    """User `unit`'s question: long for 3 users in 20, short otherwise."""
    kind = LONG if unit % 20 < LONG_SHARE_IN_20 else SHORT
    return f"{kind} question {unit}"


def script(fake: FakeAnthropic) -> None:
    """Teach the fake API the answers."""
    fake.script_reply(LONG, LONG_ANSWER)
    fake.script_reply(SHORT, CONCLUSION)
