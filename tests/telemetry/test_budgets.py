import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from pytest_django.fixtures import Settings

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags import services as flag_services
from flags.models import ConfigVersion, Environment, Flag
from telemetry import budgets as rules
from telemetry import tasks
from telemetry.models.incidents import Incident, IncidentKind, WebhookDelivery, WebhookEvent
from telemetry.services import incidents, webhooks
from telemetry.services.ingest import ingest_calls
from tests.factories import audit_mark, audit_since, make_environment, make_flag, make_version
from tests.telemetry.call_factories import at, flag_state_for, make_record, seed_prices

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACTOR = Actor.system("tests")


# the pure rules


@pytest.mark.parametrize(
    ("surface", "ttft", "total"),
    [
        ("typing_assist", 200, None),
        ("chat", 2_000, None),
        ("agent", None, 30_000),
        ("batch", None, 30 * 60 * 1000),
    ],
)
def test_effective_budgets__no_overrides__surface_defaults(
    surface: str, ttft: int | None, total: int | None
) -> None:
    found = rules.effective_budgets(surface, {})

    assert (found.ttft_p95_ms, found.total_p95_ms, found.daily_cost_usd) == (ttft, total, None)
    assert found.source(rules.TTFT_P95_MS) == "surface default"


def test_effective_budgets__overrides__replace_defaults_and_name_the_flag() -> None:
    found = rules.effective_budgets("chat", {"ttft_p95_ms": 1500, "daily_cost_usd": "25.00", "other": 1})

    assert (found.ttft_p95_ms, found.total_p95_ms, found.daily_cost_usd) == (1500, None, Decimal("25.00"))
    assert (found.source("ttft_p95_ms"), found.source("total_p95_ms")) == ("flag", "surface default")


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"ttft_p95_ms": 0}, "ttft_p95_ms"),
        ({"ttft_p95_ms": 1.5}, "ttft_p95_ms"),
        ({"total_p95_ms": True}, "total_p95_ms"),
        ({"total_p95_ms": "200"}, "total_p95_ms"),
        ({"daily_cost_usd": "-1"}, "daily_cost_usd"),
        ({"daily_cost_usd": "lots"}, "daily_cost_usd"),
        ({"daily_cost_usd": "NaN"}, "daily_cost_usd"),
        ({"p99_ms": 10}, "p99_ms"),
    ],
)
def test_clean_overrides__bad_value__error_at_its_path(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(rules.BudgetError) as raised:
        rules.clean_overrides(changes)

    assert [error["path"] for error in raised.value.errors] == [path]


def test_clean_overrides__costs__normalised_to_cents_strings() -> None:
    cleaned = rules.clean_overrides({"daily_cost_usd": 12.5, "ttft_p95_ms": 900, "total_p95_ms": None})

    assert cleaned == {"daily_cost_usd": "12.50", "ttft_p95_ms": 900, "total_p95_ms": None}


def test_merge_overrides__none__removes_override_and_keeps_other_keys() -> None:
    merged = rules.merge_overrides(
        {"ttft_p95_ms": 900, "note": "x"}, {"ttft_p95_ms": None, "total_p95_ms": 5}
    )

    assert merged == {"note": "x", "total_p95_ms": 5}


def test_latency_checks__values__breached_only_above_budget_and_with_data() -> None:
    found = rules.effective_budgets("chat", {"total_p95_ms": 10_000})

    checks = rules.latency_checks(found, {"ttft_p95_ms": 2_000.0, "total_p95_ms": None})

    assert [(c.metric, c.breached) for c in checks] == [("ttft_p95_ms", False), ("total_p95_ms", False)]
    assert rules.latency_checks(found, {"ttft_p95_ms": 2_001.0})[0].breached


def test_metric_check__within_share__at_most_that_share_of_the_budget_and_measured() -> None:
    found = rules.effective_budgets("chat", {})

    [at_90, over_90] = [rules.latency_checks(found, {"ttft_p95_ms": v})[0] for v in (1_800.0, 1_801.0)]

    assert (at_90.within_share(90), over_90.within_share(90), over_90.within_share(100)) == (
        True,
        False,
        True,
    )
    assert not rules.latency_checks(found, {"ttft_p95_ms": None})[0].within_share(100)


# editing a flag's budgets


@pytest.mark.django_db
def test_update_flag_budgets__overrides__stored_with_audit_diff() -> None:
    flag = make_flag(surface="chat")
    mark = audit_mark()

    flag = incidents.update_flag_budgets(
        flag=flag, changes={"ttft_p95_ms": 1500, "daily_cost_usd": "40"}, actor=ACTOR, reason="launch"
    )

    assert flag.budgets == {"ttft_p95_ms": 1500, "daily_cost_usd": "40.00"}
    [entry] = audit_since(mark)
    assert (entry.action, entry.flag_key, entry.reason) == ("flag.budgets_changed", flag.key, "launch")
    assert entry.changes == {
        "ttft_p95_ms": {"before": None, "after": 1500},
        "daily_cost_usd": {"before": None, "after": "40.00"},
    }


@pytest.mark.django_db
def test_update_flag_budgets__null__back_to_surface_default() -> None:
    flag = incidents.update_flag_budgets(flag=make_flag(), changes={"ttft_p95_ms": 1500}, actor=ACTOR)

    flag = incidents.update_flag_budgets(flag=flag, changes={"ttft_p95_ms": None}, actor=ACTOR)

    assert flag.budgets == {}
    assert incidents.budgets_for(flag).ttft_p95_ms == 2_000


@pytest.mark.django_db
def test_update_flag_budgets__same_values__no_audit_entry() -> None:
    flag = incidents.update_flag_budgets(flag=make_flag(), changes={"ttft_p95_ms": 1500}, actor=ACTOR)
    mark = audit_mark()

    incidents.update_flag_budgets(flag=flag, changes={"ttft_p95_ms": 1500}, actor=ACTOR)

    assert audit_since(mark) == []


@pytest.mark.django_db
def test_update_flag_budgets__invalid__invalid_input_and_nothing_stored() -> None:
    flag = make_flag()

    with pytest.raises(InvalidInput) as raised:
        incidents.update_flag_budgets(flag=flag, changes={"ttft_p95_ms": -5}, actor=ACTOR)

    assert raised.value.errors[0]["path"] == "ttft_p95_ms"
    flag.refresh_from_db()
    assert flag.budgets == {}


@pytest.mark.django_db
def test_update_flag_budgets__archived_flag__conflict() -> None:
    flag = flag_services.archive_flag(flag=make_flag(), actor=ACTOR)

    with pytest.raises(Conflict):
        incidents.update_flag_budgets(flag=flag, changes={"ttft_p95_ms": 100}, actor=ACTOR)


# the periodic check


@pytest.fixture
def check_settings(settings: Settings, db: None) -> Settings:
    settings.FLAGSTAFF_BUDGET_WINDOW_MINUTES = 15
    settings.FLAGSTAFF_BUDGET_MIN_CALLS = 5
    seed_prices()
    return settings


def serving(
    surface: str = "chat", *, environment: Environment | None = None, flag: Flag | None = None
) -> ConfigVersion:
    """A flag (new unless given) with v1 published and enabled in `environment`."""
    environment = environment or make_environment()
    version = make_version(flag=flag or make_flag(surface=surface))
    flag_services.publish_version(flag=version.flag, environment=environment, number=1, actor=ACTOR)
    flag_services.set_flag_enabled(flag=version.flag, environment=environment, enabled=True, actor=ACTOR)
    return version


def send_calls(
    version: ConfigVersion, environment: Environment, count: int, *, when: datetime, **fields: Any
) -> None:
    """Ingest `count` calls of the flag at `when` (at that moment), as a service would send them."""
    records = [
        make_record(flag_state=flag_state_for(environment, version), timestamp=at(when), **fields)
        for _ in range(count)
    ]
    with time_machine.travel(when, tick=False):
        result = ingest_calls(records=records)
    assert result.accepted == count


def environment_of(version: ConfigVersion) -> Environment:
    return version.flag.states.get().environment


def check(now: datetime) -> incidents.CheckResult:
    with time_machine.travel(now, tick=False):
        return incidents.check_budgets()


def incident_then_calls(*, ttft_ms: int) -> datetime:
    """A chat flag (TTFT budget 2,000 ms) whose latency incident opened at NOON, then 10 calls
    of `ttft_ms` half an hour later; returns the time to check again."""
    version = serving("chat")
    environment = environment_of(version)
    send_calls(version, environment, 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)
    check(NOON)
    later = NOON + timedelta(minutes=30)
    send_calls(version, environment, 10, when=later - timedelta(minutes=2), ttft_ms=ttft_ms)
    return later


def test_check_budgets__chat_ttft_p95_over_2s__opens_latency_incident_with_evidence(
    check_settings: Settings,
) -> None:
    version = serving("chat")
    environment = environment_of(version)
    send_calls(version, environment, 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600, latency_ms=4_000)
    mark = audit_mark()

    result = check(NOON)

    [incident] = Incident.objects.all()
    assert result.opened == [incident.pk]
    assert (incident.kind, incident.state, incident.flag_id, incident.environment_id) == (
        IncidentKind.LATENCY_BUDGET,
        "open",
        version.flag_id,
        environment.pk,
    )
    assert "TTFT p95" in incident.summary
    evidence = incident.evidence
    assert (evidence["calls"], evidence["observations"]["ttft_p95_ms"], evidence["min_calls"]) == (10, 10, 5)
    assert evidence["window"]["minutes"] == 15
    [ttft] = [c for c in evidence["checks"] if c["metric"] == "ttft_p95_ms"]
    assert (ttft["budget"], ttft["breached"], ttft["budget_source"]) == (2_000, True, "surface default")
    assert 2_600 * 0.95 < ttft["value"] < 2_600 * 1.05
    [entry] = audit_since(mark)
    assert (entry.action, entry.flag_key, entry.environment_key) == (
        "incident.opened",
        version.flag.key,
        environment.key,
    )


def test_check_budgets__typing_assist_ttft_300ms__breaches_its_200ms_default(
    check_settings: Settings,
) -> None:
    version = serving("typing_assist")
    send_calls(version, environment_of(version), 6, when=NOON - timedelta(minutes=1), ttft_ms=300)

    check(NOON)

    assert Incident.objects.open().get().kind == IncidentKind.LATENCY_BUDGET


def test_check_budgets__within_budget__no_incident(check_settings: Settings) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=3), ttft_ms=400)

    result = check(NOON)

    assert (result.checked, result.opened, Incident.objects.count()) == (1, [], 0)


def test_check_budgets__fewer_calls_than_minimum__no_incident(check_settings: Settings) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 4, when=NOON - timedelta(minutes=3), ttft_ms=9_000)

    check(NOON)

    assert Incident.objects.count() == 0


def test_check_budgets__slow_calls_outside_the_window__no_incident(check_settings: Settings) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=20), ttft_ms=9_000)

    check(NOON)

    assert Incident.objects.count() == 0


def test_check_budgets__flag_override_above_measure__no_incident(check_settings: Settings) -> None:
    version = serving("chat")
    incidents.update_flag_budgets(flag=version.flag, changes={"ttft_p95_ms": 5_000}, actor=ACTOR)
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)

    check(NOON)

    assert Incident.objects.count() == 0


def test_check_budgets__still_breached_on_rerun__one_incident_and_no_new_audit(
    check_settings: Settings,
) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)
    check(NOON)
    mark = audit_mark()

    again = check(NOON + timedelta(minutes=1))

    assert (again.opened, again.resolved, Incident.objects.count(), audit_since(mark)) == ([], [], 1, [])


def test_check_budgets__back_within_budget__resolves_with_numbers(check_settings: Settings) -> None:
    later = incident_then_calls(ttft_ms=300)
    mark = audit_mark()

    result = check(later)

    incident = Incident.objects.get()
    assert result.resolved == [incident.pk]
    assert (incident.state, incident.resolved_at) == ("resolved", later)
    assert incident.resolution["reason"] == "back within budget"
    assert incident.resolution["checks"][0]["breached"] is False
    assert [entry.action for entry in audit_since(mark)] == ["incident.resolved"]


def test_check_budgets__open_and_p95_within_budget_above_recovery_share__stays_open(
    check_settings: Settings,
) -> None:
    later = incident_then_calls(ttft_ms=1_950)  # TTFT budget 2,000 ms; recovery at 90 %: 1,800 ms

    result = check(later)

    assert (result.resolved, Incident.objects.open().count()) == ([], 1)


def test_check_budgets__open_and_p95_under_recovery_share__resolves(check_settings: Settings) -> None:
    later = incident_then_calls(ttft_ms=1_700)

    result = check(later)

    incident = Incident.objects.get()
    assert result.resolved == [incident.pk]
    assert incident.resolution["recovery_percent"] == 90


def test_check_budgets__recovery_at_100_percent__resolves_as_soon_as_within_budget(
    check_settings: Settings,
) -> None:
    check_settings.FLAGSTAFF_BUDGET_RECOVERY_PERCENT = 100
    later = incident_then_calls(ttft_ms=1_950)

    assert check(later).resolved == [Incident.objects.get().pk]


def test_check_budgets__p95_between_recovery_share_and_budget_and_none_open__no_incident(
    check_settings: Settings,
) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=3), ttft_ms=1_950)

    assert (check(NOON).opened, Incident.objects.count()) == ([], 0)


@pytest.mark.parametrize("value", ["0", "101", "ninety"])
def test_settings__recovery_percent_out_of_range__refuse_to_load(value: str) -> None:
    env = {
        **os.environ,
        "FLAGSTAFF_BUDGET_RECOVERY_PERCENT": value,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    }

    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )

    assert run.returncode != 0
    assert "FLAGSTAFF_BUDGET_RECOVERY_PERCENT must be" in run.stderr


def test_check_budgets__open_and_no_calls_any_more__stays_open(check_settings: Settings) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)
    check(NOON)

    result = check(NOON + timedelta(hours=1))

    assert (result.resolved, Incident.objects.open().count()) == ([], 1)


def test_check_budgets__flag_disabled__open_incident_resolved_with_reason(check_settings: Settings) -> None:
    version = serving("chat")
    environment = environment_of(version)
    send_calls(version, environment, 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)
    check(NOON)
    flag_services.set_flag_enabled(flag=version.flag, environment=environment, enabled=False, actor=ACTOR)

    check(NOON + timedelta(minutes=1))

    incident = Incident.objects.get()
    assert incident.state == "resolved"
    assert "no longer enabled" in incident.resolution["reason"]


def test_check_budgets__per_environment__only_the_slow_environment_opens(check_settings: Settings) -> None:
    slow, fast = make_environment(), make_environment()
    version = serving("chat", environment=slow)
    flag_services.publish_version(flag=version.flag, environment=fast, number=1, actor=ACTOR)
    flag_services.set_flag_enabled(flag=version.flag, environment=fast, enabled=True, actor=ACTOR)
    send_calls(version, slow, 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)
    send_calls(version, fast, 10, when=NOON - timedelta(minutes=3), ttft_ms=300)

    result = check(NOON)

    assert result.checked == 2
    assert list(Incident.objects.values_list("environment_id", flat=True)) == [slow.pk]


def test_check_budgets__spend_over_daily_budget__cost_incident_then_resolved_next_day(
    check_settings: Settings,
) -> None:
    version = serving("chat")
    environment = environment_of(version)
    incidents.update_flag_budgets(flag=version.flag, changes={"daily_cost_usd": "0.01"}, actor=ACTOR)
    # Each default record costs $0.0043 on claude-sonnet-5-5 (1,000 input, 200 output, 3,000 cache reads).
    send_calls(version, environment, 3, when=NOON - timedelta(hours=3), ttft_ms=100)

    check(NOON)

    incident = Incident.objects.open().get()
    assert incident.kind == IncidentKind.COST_BUDGET
    assert incident.evidence | {"until": None} == {
        "day": "2026-11-25",
        "until": None,
        "cost_usd": "0.012900",
        "budget_usd": "0.01",
        "budget_source": "flag",
        "calls": 3,
        "calls_without_cost": 0,
    }
    assert "$0.01 spent today" in incident.summary

    check(NOON + timedelta(hours=13))

    incident.refresh_from_db()
    assert incident.state == "resolved"


def test_check_budgets__spend_under_daily_budget__no_incident(check_settings: Settings) -> None:
    version = serving("chat")
    incidents.update_flag_budgets(flag=version.flag, changes={"daily_cost_usd": "1"}, actor=ACTOR)
    send_calls(version, environment_of(version), 3, when=NOON - timedelta(hours=3), ttft_ms=100)

    check(NOON)

    assert Incident.objects.count() == 0


def test_check_budgets__open_and_resolve__queue_webhook_deliveries(check_settings: Settings) -> None:
    webhooks.create_webhook(
        name="pager", url="https://hooks.example.com/x", events=list(WebhookEvent.values), actor=ACTOR
    )
    webhooks.create_webhook(
        name="only-opened",
        url="https://hooks.example.com/y",
        events=[WebhookEvent.INCIDENT_OPENED],
        actor=ACTOR,
    )
    version = serving("chat")
    environment = environment_of(version)
    send_calls(version, environment, 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)
    check(NOON)
    send_calls(version, environment, 10, when=NOON + timedelta(minutes=28), ttft_ms=300)
    check(NOON + timedelta(minutes=30))

    rows = list(WebhookDelivery.objects.order_by("id").values_list("webhook__name", "event", "payload"))
    assert sorted((event, name) for name, event, _ in rows) == [
        ("incident.opened", "only-opened"),
        ("incident.opened", "pager"),
        ("incident.resolved", "pager"),
    ]
    opened_payload = rows[0][2]
    assert (opened_payload["flag"], opened_payload["environment"], opened_payload["state"]) == (
        version.flag.key,
        environment.key,
        "open",
    )
    assert opened_payload["evidence"]["checks"][0]["breached"] is True


def test_check_budgets__unattributed_slow_calls__ignored(check_settings: Settings) -> None:
    serving("chat")
    with time_machine.travel(NOON - timedelta(minutes=2), tick=False):
        ingest_calls(
            records=[make_record(ttft_ms=9_000, timestamp=at(NOON - timedelta(minutes=2))) for _ in range(10)]
        )

    check(NOON)

    assert Incident.objects.count() == 0


def test_check_budgets_task__breach__returns_counts(check_settings: Settings) -> None:
    version = serving("chat")
    send_calls(version, environment_of(version), 10, when=NOON - timedelta(minutes=3), ttft_ms=2_600)

    with time_machine.travel(NOON, tick=False):
        outcome = tasks.check_budgets()

    assert outcome == {"checked": 1, "opened": 1, "resolved": 0}
