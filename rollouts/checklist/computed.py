"""The checklist items computed from the data, each a function of the Subject.

Missing data is never a pass: an item that needs telemetry fails when there is none, saying so.
"Recent" telemetry is the last day; per-call facts (request ids, TTFT) are read from the newest
RECENT_CALLS calls of that day, through the call table's timestamp index, so a check costs the
same however busy the flag is; per-flag totals come from the rollups.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, Sum

from evals.services.gate import gate_status
from flags.models import ClaudeModel, ConfigVersion, Lifecycle, Surface
from rollouts.checklist.items import Subject, Verdict, computed, failed, not_applicable, passed
from telemetry.models import AdminSyncState, CallRecord, Rollup, SyncHealth
from telemetry.services.incidents import budgets_for
from telemetry.services.usage_sync import is_configured

RECENT = timedelta(days=1)
RECENT_CALLS = 1000
REQUEST_ID_SHARE = 0.99
TTFT_SHARE = 0.99
# The client substitutes an id of its own when the API's response carried none
# (client/flagstaff/messages.py): such a call cannot be traced with Anthropic support.
LOCAL_REQUEST_ID_PREFIX = "fsreq_"
RETIREMENT_RUNWAY = timedelta(days=60)
USER_FACING = (Surface.CHAT, Surface.TYPING_ASSIST)
# How stale the Admin API's usage may be while cost dashboards still count as live: its daily
# buckets land late, so a day and a half of lag is normal.
USAGE_SYNC_LAG = timedelta(hours=36)


def _each(subject: Subject, check: Any) -> Verdict:
    """Fold a per-candidate check: green only when every candidate is."""
    verdicts = [(version, check(version)) for version in subject.candidates]
    red = [(version, verdict) for version, verdict in verdicts if not verdict.green]
    if red:
        return failed(" ".join(verdict.detail for _, verdict in red))
    if not verdicts:
        return failed("There is no candidate version to check.")
    return verdicts[0][1] if len(verdicts) == 1 else passed(" ".join(v.detail for _, v in verdicts))


def _recent_calls(subject: Subject, **filters: Any) -> list[dict[str, Any]]:
    since = subject.now - RECENT
    calls = CallRecord.objects.filter(
        timestamp__gte=since,
        timestamp__lte=subject.now,
        flag=subject.flag,
        environment=subject.environment,
        **filters,
    )
    return [dict(row) for row in calls.order_by("-timestamp").values("request_id", "ttft_ms")[:RECENT_CALLS]]


def _rollup_totals(subject: Subject) -> dict[str, int]:
    rows = Rollup.objects.filter(
        flag=subject.flag,
        environment=subject.environment,
        bucket__gte=subject.now - RECENT,
        bucket__lte=subject.now,
    )
    totals = rows.aggregate(
        calls=Sum("calls"),
        stop_other=Sum("stop_other"),
        cache=Sum("cache_read_tokens") + Sum("cache_write_5m_tokens") + Sum("cache_write_1h_tokens"),
    )
    return {name: int(value or 0) for name, value in totals.items()}


def _pct(share: float) -> str:
    return f"{share * 100:.1f} %"


@computed("eval_gate", "Eval gate passed")
def eval_gate(subject: Subject) -> Verdict:
    def check(version: ConfigVersion) -> Verdict:
        status = gate_status(flag=subject.flag, version=version, environment=subject.environment)
        if not status.required:
            return failed(
                f"Flag '{subject.flag.key}' has no eval gate: the eval set is the deploy gate; "
                "set a gate policy and judge v"
                f"{version.number}."
            )
        if status.admits:
            return passed(f"v{version.number}: gate {status.summary}. {status.detail}".strip())
        return failed(f"v{version.number}: gate {status.summary}. {status.detail}".strip())

    return _each(subject, check)


@computed("streaming", "Streaming on user-facing surfaces")
def streaming(subject: Subject) -> Verdict:
    surface = subject.flag.surface
    if surface not in USER_FACING:
        return not_applicable(f"A {subject.flag.get_surface_display().lower()} flag is not user-facing.")
    if subject.baseline is None:
        return failed(f"'{subject.environment.key}' serves no version of this flag yet.")
    calls = _recent_calls(subject, version=subject.baseline.number)
    if not calls:
        return failed(
            f"No calls of v{subject.baseline.number} in '{subject.environment.key}' in the last day: "
            "nothing shows the service streams."
        )
    share = sum(call["ttft_ms"] is not None for call in calls) / len(calls)
    words = (
        f"{_pct(share)} of the last {len(calls)} calls of v{subject.baseline.number} report a time "
        "to first token"
    )
    if share >= TTFT_SHARE:
        return passed(f"{words}: the service streams.")
    return failed(f"{words} (at least {_pct(TTFT_SHARE)} needed): stream user-facing calls.")


@computed("request_ids", "request_id logged on ≥ 99 % of calls")
def request_ids(subject: Subject) -> Verdict:
    calls = _recent_calls(subject)
    if not calls:
        return failed(f"No calls of this flag in '{subject.environment.key}' in the last day.")
    share = sum(not call["request_id"].startswith(LOCAL_REQUEST_ID_PREFIX) for call in calls) / len(calls)
    words = f"{_pct(share)} of the last {len(calls)} calls carry the API's request_id"
    if share >= REQUEST_ID_SHARE:
        return passed(f"{words}.")
    return failed(f"{words} (at least {_pct(REQUEST_ID_SHARE)} needed).")


@computed("stop_reasons", "Every stop reason handled")
def stop_reasons(subject: Subject) -> Verdict:
    totals = _rollup_totals(subject)
    if not totals["calls"]:
        return failed(f"No calls of this flag in '{subject.environment.key}' in the last day.")
    if totals["stop_other"]:
        return failed(
            f"{totals['stop_other']} of {totals['calls']} calls in the last day ended with a stop "
            "reason the service did not recognise."
        )
    return passed(f"All {totals['calls']} calls in the last day ended with a known stop reason.")


def _uncached(content: dict[str, Any]) -> list[str]:
    """What of the prompt prefix no cache breakpoint covers. The prefix is tools, then system:
    a breakpoint on the system prompt caches the tools too, a top-level one caches both."""
    if "cache_control" in content:
        return []
    system, tools = content.get("system"), content.get("tools") or []
    system_cached = isinstance(system, list) and any(
        isinstance(block, dict) and "cache_control" in block for block in system
    )
    tools_cached = system_cached or any(isinstance(tool, dict) and "cache_control" in tool for tool in tools)
    return [
        part
        for part, present, cached in (
            ("the system prompt", system, system_cached),
            ("the tools", tools, tools_cached),
        )
        if present and not cached
    ]


@computed("prompt_caching", "cache_control on the system prompt and tools; cache hits tracked")
def prompt_caching(subject: Subject) -> Verdict:
    def check(version: ConfigVersion) -> Verdict:
        gaps = _uncached(version.content)
        if gaps:
            return failed(f"v{version.number} has no cache_control covering {' and '.join(gaps)}.")
        return passed(f"v{version.number} caches its prompt prefix.")

    content = _each(subject, check)
    if not content.green:
        return content
    totals = _rollup_totals(subject)
    if not totals["calls"]:
        return failed(f"{content.detail} No telemetry in the last day: the cache-hit ratio is not tracked.")
    if not totals["cache"]:
        return failed(
            f"{content.detail} The last day's {totals['calls']} calls report no cache reads or writes: "
            "send the usage's cache fields with the telemetry."
        )
    return passed(f"{content.detail} The cache-hit ratio is tracked from the telemetry.")


@computed("effort", "Effort set explicitly")
def effort(subject: Subject) -> Verdict:
    def check(version: ConfigVersion) -> Verdict:
        value = (version.content.get("output_config") or {}).get("effort")
        if value:
            return passed(f"v{version.number} sets effort '{value}'.")
        row = _catalog_entry(str(version.content.get("model", "")))
        if row is not None and not (row.capabilities or {}).get("effort_levels"):
            return not_applicable(f"v{version.number}'s model {row.model_id} takes no effort setting.")
        return failed(f"v{version.number} leaves output_config.effort to the model's default.")

    return _each(subject, check)


@computed("max_iterations", "Agent loop bounded by max_iterations")
def max_iterations(subject: Subject) -> Verdict:
    if subject.flag.surface != Surface.AGENT:
        return not_applicable(f"A {subject.flag.get_surface_display().lower()} flag runs no agent loop.")

    def check(version: ConfigVersion) -> Verdict:
        limit = version.content.get("max_iterations")
        if limit:
            return passed(f"v{version.number} stops after {limit} iterations.")
        return failed(f"v{version.number} sets no max_iterations.")

    return _each(subject, check)


@computed("budgets", "Latency budget and daily cost budget set")
def budgets(subject: Subject) -> Verdict:
    found = budgets_for(subject.flag)
    latency = [
        f"{label} {value} ms"
        for label, value in (("TTFT p95", found.ttft_p95_ms), ("total p95", found.total_p95_ms))
        if value is not None
    ]
    missing = [
        what
        for what, ok in (
            ("a latency budget", bool(latency)),
            ("a daily cost budget", found.daily_cost_usd is not None),
        )
        if not ok
    ]
    if missing:
        return failed(f"Flag '{subject.flag.key}' has no {' and no '.join(missing)}.")
    return passed(f"Latency budget {', '.join(latency)}; daily cost budget ${found.daily_cost_usd}.")


@computed("cost_dashboards", "Cost dashboards live (Admin API sync healthy)")
def cost_dashboards(subject: Subject) -> Verdict:
    if not is_configured():
        return failed("The Usage & Cost Admin API is not configured (ANTHROPIC_ADMIN_API_KEY).")
    streams = AdminSyncState.objects.aggregate(
        total=Count("id"),
        unhealthy=Count("id", filter=~Q(health__in=[SyncHealth.OK, SyncHealth.RATE_LIMITED])),
        fresh=Count("id", filter=Q(synced_through__gte=subject.now - USAGE_SYNC_LAG)),
    )
    if not streams["total"]:
        return failed("The Admin API sync has not run yet.")
    if streams["unhealthy"]:
        return failed(f"{streams['unhealthy']} of {streams['total']} Admin API report streams are failing.")
    if not streams["fresh"]:
        return failed("No Admin API report has synced in the last 36 hours.")
    return passed(f"All {streams['total']} Admin API report streams are healthy.")


def _catalog_entry(model_id: str) -> ClaudeModel | None:
    found = ClaudeModel.objects.filter(model_id=model_id).first()
    if found is not None:
        return found
    return next((row for row in ClaudeModel.objects.all() if model_id in (row.aliases or [])), None)


@computed("model_lifecycle", "Model not deprecated, or retiring in 60 days or more")
def model_lifecycle(subject: Subject) -> Verdict:
    today = subject.now.date()

    def check(version: ConfigVersion) -> Verdict:
        model_id = str(version.content.get("model", ""))
        row = _catalog_entry(model_id)
        if row is None:
            return failed(f"v{version.number}'s model '{model_id}' is not in the model catalog.")
        if row.lifecycle == Lifecycle.ACTIVE:
            return passed(f"v{version.number}'s model {model_id} is active.")
        replacement = f"; move to {row.replacement}" if row.replacement else ""
        if row.lifecycle == Lifecycle.RETIRED or row.retires_at is None:
            return failed(
                f"v{version.number}'s model {model_id} is {row.get_lifecycle_display().lower()}{replacement}."
            )
        days = (row.retires_at - today).days
        if days >= RETIREMENT_RUNWAY.days:
            return passed(f"v{version.number}'s model {model_id} is deprecated and retires in {days} days.")
        return failed(
            f"v{version.number}'s model {model_id} retires in {days} days, less than "
            f"{RETIREMENT_RUNWAY.days}{replacement}."
        )

    return _each(subject, check)
