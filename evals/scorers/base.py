"""What every scorer takes and gives: the answer, the case, the context, and an outcome."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anthropic

    from telemetry.pricing import PriceTable


class ScorerError(Exception):
    """The scorer could not judge the answer (bad input, judge unreachable): an error, not a failure.

    A judge that was paid and then answered unusably still reports what it cost.
    """

    def __init__(
        self, message: str, *, cost_micro_usd: int = 0, usage: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cost_micro_usd = cost_micro_usd
        self.usage = usage


@dataclass(frozen=True)
class Answer:
    """A model's answer as the scorers see it."""

    content: Sequence[Mapping[str, Any]]
    stop_reason: str | None = None
    output_tokens: int | None = None
    iterations: int = 1

    @classmethod
    def from_message(cls, message: Mapping[str, Any], *, iterations: int = 1) -> Answer:
        """From a Messages API response body (or a stored sample's output)."""
        content = message.get("content")
        usage = message.get("usage") if isinstance(message.get("usage"), Mapping) else {}
        tokens = usage.get("output_tokens") if usage else None
        return cls(
            content=[block for block in content if isinstance(block, Mapping)]
            if isinstance(content, list)
            else [],
            stop_reason=message.get("stop_reason") if isinstance(message.get("stop_reason"), str) else None,
            output_tokens=tokens if isinstance(tokens, int) else None,
            iterations=iterations,
        )

    @classmethod
    def from_text(cls, text: str, *, stop_reason: str | None = "end_turn") -> Answer:
        return cls(content=[{"type": "text", "text": text}], stop_reason=stop_reason)

    @property
    def text(self) -> str:
        return "".join(str(block.get("text", "")) for block in self.content if block.get("type") == "text")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [
            {"name": block.get("name"), "input": block.get("input", {})}
            for block in self.content
            if block.get("type") == "tool_use"
        ]

    def json(self) -> Any:
        """The answer's text parsed as JSON (a fenced ```json block is unwrapped)."""
        text = self.text.strip()
        if text.startswith("```"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
            text = text.rsplit("```", 1)[0]
        try:
            return json.loads(text)
        except ValueError as error:
            raise NotJson(f"The answer is not JSON ({error.args[0]}).") from error


class NotJson(ScorerError):
    pass


@dataclass(frozen=True)
class Case:
    input: Mapping[str, Any]
    reference: Mapping[str, Any] | None = None
    assertions: Sequence[Mapping[str, Any]] = ()

    def reference_field(self, name: str) -> Any:
        """The reference's `name`, or a ScorerError that says the case lacks it."""
        if not self.reference or self.reference.get(name) is None:
            raise ScorerError(f"The case has no reference {name} to compare with.")
        return self.reference[name]


@dataclass(frozen=True)
class Judge:
    """A resolved judge: its config version's content and what calling it needs."""

    content: Mapping[str, Any]
    client: anthropic.Anthropic
    prices: PriceTable
    today: date
    version_id: int | None = None


@dataclass(frozen=True)
class Context:
    """What a scorer may need beyond the answer and the case."""

    judges: Mapping[str, Judge] = field(default_factory=dict)
    max_iterations: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What a scorer function returns: a score in [0, 1] and why, in words."""

    score: float
    explanation: str
    cost_micro_usd: int = 0
    usage: Mapping[str, Any] | None = None
    judge_version_id: int | None = None


@dataclass(frozen=True)
class Result:
    """A scorer's verdict as stored: a score and a pass, or an error (never counted as a failure)."""

    score: float | None
    passed: bool | None
    explanation: str
    error: str = ""
    cost_micro_usd: int = 0
    usage: Mapping[str, Any] | None = None
    judge_version_id: int | None = None

    @property
    def is_error(self) -> bool:
        return bool(self.error)


def ratio(good: int, total: int) -> float:
    return good / total if total else 1.0
