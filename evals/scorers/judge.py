"""The LLM judge: a judge config (surface `judge`) grades the answer by its rubric.

The request is rendered by `flagstaff.render` (the one renderer) from the judge's config
version; the config forces its verdict tool (flags/validation/judge.py), so the verdict is
structured: `passed` (pass/fail → 1 or 0) or `score` (1-5 mapped linearly onto [0, 1]).
The judge's own usage and cost are returned for recording, also when its answer is unusable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from evals.scorers.base import Answer, Case, Context, Judge, Outcome, ScorerError
from flags.validation.judge import ONE_TO_FIVE, verdict_tool
from flagstaff.render import RenderError, render_request


def llm_judge(answer: Answer, case: Case, params: Mapping[str, Any], context: Context) -> Outcome:
    key = str(params["judge"])
    judge = context.judges.get(key)
    if judge is None:
        raise ScorerError(f"The judge '{key}' has no version to run (is it published?).")
    tool, issues = verdict_tool(judge.content)
    if tool is None:
        raise ScorerError(f"The judge '{key}' is not a valid judge: {issues[0].path}: {issues[0].message}")
    prompt = judge_prompt(case, answer, tool.name)
    try:
        rendered = render_request(judge.content, messages=[{"role": "user", "content": prompt}])
    except RenderError as error:
        raise ScorerError(f"The judge '{key}' cannot be rendered: {error}.") from error
    response = _call(judge, rendered.kwargs, beta=rendered.beta)
    raw_usage = response.get("usage")
    usage: dict[str, Any] = dict(raw_usage) if isinstance(raw_usage, Mapping) else {}
    cost = _cost(judge, str(response.get("model", judge.content["model"])), usage)
    verdict = next(
        (
            block.get("input")
            for block in response.get("content") or []
            if block.get("type") == "tool_use" and block.get("name") == tool.name
        ),
        None,
    )
    if not isinstance(verdict, Mapping):
        raise ScorerError(
            f"The judge '{key}' did not record a verdict with its tool.", cost_micro_usd=cost, usage=usage
        )
    score = _score(verdict, tool.scale, cost=cost, usage=usage)
    reason = str(verdict.get("explanation") or "").strip() or "The judge gave no reason."
    scale = f"{verdict.get('score')}/5" if tool.scale == ONE_TO_FIVE else ("pass" if score == 1.0 else "fail")
    return Outcome(
        score,
        f"Judge '{key}': {scale}. {reason}",
        cost_micro_usd=cost,
        usage=usage,
        judge_version_id=judge.version_id,
    )


def judge_prompt(case: Case, answer: Answer, tool_name: str) -> str:
    parts = [
        "Judge the answer below by the rubric in your instructions, then record your verdict with "
        f"the {tool_name} tool.",
        f"<conversation>\n{_conversation(case.input.get('messages') or [])}\n</conversation>",
    ]
    if case.reference:
        parts.append(f"<reference>\n{json.dumps(case.reference, ensure_ascii=False, indent=1)}\n</reference>")
    parts.append(
        f"<answer>\n{answer.text or json.dumps(list(answer.content), ensure_ascii=False)}\n</answer>"
    )
    return "\n\n".join(parts)


def _conversation(messages: Sequence[Any]) -> str:
    lines = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(
                str(block.get("text"))
                if isinstance(block, Mapping) and "text" in block
                else json.dumps(block)
                for block in content
            )
        lines.append(f"{message.get('role', 'user')}: {content}")
    return "\n".join(lines)


def _call(judge: Judge, kwargs: dict[str, Any], *, beta: bool) -> dict[str, Any]:
    import anthropic

    try:
        if beta:
            message: Any = judge.client.beta.messages.create(**kwargs)
        else:
            message = judge.client.messages.create(**kwargs)
    except anthropic.APIStatusError as error:
        raise ScorerError(
            f"The judge's API call failed with HTTP {error.status_code}: {error.message}"
        ) from error
    except anthropic.APIError as error:
        raise ScorerError(f"The judge's API call failed: {error.message}") from error
    body: dict[str, Any] = message.model_dump()
    return body


def _cost(judge: Judge, model: str, usage: Mapping[str, Any]) -> int:
    from telemetry.pricing import TokenCounts

    tokens = TokenCounts.from_usage(usage)
    cost = judge.prices.cost_micro_usd(
        model=model, on=judge.today, tokens=tokens, service_tier=str(usage.get("service_tier") or "")
    )
    # A model without a known price costs 0 here rather than failing the verdict; the usage is
    # recorded beside it, so the cost can be recomputed once the price table knows the model.
    return cost or 0


def _score(verdict: Mapping[str, Any], scale: str, *, cost: int, usage: Mapping[str, Any]) -> float:
    if scale == ONE_TO_FIVE:
        value = verdict.get("score")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ScorerError(
                f"The judge's score {value!r} is not a whole number from 1 to 5.",
                cost_micro_usd=cost,
                usage=usage,
            )
        return (value - 1) / 4
    passed = verdict.get("passed")
    if not isinstance(passed, bool):
        raise ScorerError(
            f"The judge's verdict {passed!r} is not true or false.", cost_micro_usd=cost, usage=usage
        )
    return 1.0 if passed else 0.0
