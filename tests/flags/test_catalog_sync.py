from datetime import date
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from controlplane.models import AuditEntry
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic, model_info
from flags import tasks
from flags.models import ClaudeModel, ModelPrice
from tests.factories import audit_mark, audit_since

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic, settings: Any) -> FakeAnthropic:
    """The fake Models API, with settings pointing the app's client at it."""
    settings.ANTHROPIC_API_KEY = DEFAULT_API_KEY
    settings.ANTHROPIC_BASE_URL = fake_anthropic.base_url
    return fake_anthropic


def sync_models() -> str:
    out = StringIO()
    call_command("sync_models", stdout=out)
    return out.getvalue()


def deprecate(fake: FakeAnthropic, model_id: str) -> None:
    index = next(i for i, m in enumerate(fake.models) if m["id"] == model_id)
    fake.models[index] = model_info(
        model_id,
        lifecycle="deprecated",
        deprecated_at="2026-11-20T00:00:00Z",
        retires_at="2027-05-20T00:00:00Z",
    )


def prices(model_id: str) -> list[tuple[str, str, str, Any, date]]:
    return list(
        ModelPrice.objects.filter(model__model_id=model_id)
        .order_by("token_type", "tier", "context", "effective_from")
        .values_list("token_type", "tier", "context", "usd_per_mtok", "effective_from")
    )


def test_sync_models__model_deprecated_upstream__lifecycle_and_dates_stored(fake: FakeAnthropic) -> None:
    deprecate(fake, "claude-opus-5")

    sync_models()

    row = ClaudeModel.objects.get(model_id="claude-opus-5")
    assert (row.lifecycle, row.deprecated_at, row.retires_at, row.source) == (
        "deprecated",
        date(2026, 11, 20),
        date(2027, 5, 20),
        "models_api",
    )


def test_sync_models__new_model_upstream__added(fake: FakeAnthropic) -> None:
    fake.models.insert(0, model_info("claude-opus-6", max_tokens=200_000))

    output = sync_models()

    row = ClaudeModel.objects.get(model_id="claude-opus-6")
    assert (row.display_name, row.line, row.lifecycle, row.max_tokens) == (
        "Claude Opus 6",
        "opus",
        "active",
        200_000,
    )
    assert "added: 1 (claude-opus-6)" in output


def test_sync_models__existing_model__seeded_prices_kept(fake: FakeAnthropic) -> None:
    before = prices("claude-opus-5")
    deprecate(fake, "claude-opus-5")

    sync_models()

    assert before
    assert prices("claude-opus-5") == before


def test_sync_models__any__asks_for_retired_models_too(fake: FakeAnthropic) -> None:
    sync_models()

    [request] = fake.requests
    assert set(request.query["lifecycle[]"]) == {"active", "deprecated", "retired"}


def test_sync_models__more_models_than_a_page__every_page_followed(fake: FakeAnthropic) -> None:
    fake.models_page_size = 2
    fake.models.append(model_info("claude-haiku-3-9", lifecycle="retired", retires_at="2026-01-01T00:00:00Z"))

    sync_models()

    assert len(fake.requests) == 4
    assert ClaudeModel.objects.get(model_id="claude-haiku-3-9").lifecycle == "retired"


def test_sync_models__changes__one_audit_entry_listing_them(fake: FakeAnthropic) -> None:
    fake.models.insert(0, model_info("claude-opus-6"))
    mark = audit_mark()

    sync_models()

    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_name, entry.source, entry.target_type) == (
        "catalog.synced",
        "manage.py sync_models",
        "cli",
        "flags.modelcatalog",
    )
    assert entry.changes["source"] == "models_api"
    assert entry.changes["added"] == ["claude-opus-6"]
    assert entry.changes["repriced"] == []


def test_sync_models__nothing_changed_since_last_sync__no_audit(fake: FakeAnthropic) -> None:
    sync_models()
    mark = audit_mark()

    output = sync_models()

    assert audit_since(mark) == []
    assert output.splitlines() == ["added: 0", "changed: 0", "repriced: 0"]


def test_sync_models__api_answers_401__command_error_naming_status(fake: FakeAnthropic) -> None:
    fake.api_keys = {"sk-ant-api03-another-key"}

    with pytest.raises(CommandError, match="The Models API answered 401"):
        sync_models()

    assert not AuditEntry.objects.filter(action="catalog.synced").exists()


def test_sync_models__no_api_key__command_error_naming_setting(settings: Any) -> None:
    settings.ANTHROPIC_API_KEY = ""

    with pytest.raises(CommandError, match="ANTHROPIC_API_KEY is not set"):
        sync_models()


def test_sync_models_task__key_configured__changes_returned_and_audited_as_system(
    fake: FakeAnthropic,
) -> None:
    deprecate(fake, "claude-opus-5")
    mark = audit_mark()

    changes = tasks.sync_models()

    assert changes is not None
    assert "claude-opus-5" in changes["changed"]
    [entry] = audit_since(mark)
    assert (entry.actor_kind, entry.actor_name, entry.source) == ("system", "celery:sync_models", "system")


def test_sync_models_task__no_api_key__returns_none_without_calling_api(
    fake: FakeAnthropic, settings: Any
) -> None:
    settings.ANTHROPIC_API_KEY = ""

    assert tasks.sync_models() is None
    assert fake.requests == []
