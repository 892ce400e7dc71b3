import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, connection, connections

from controlplane import audit
from controlplane.audit import GENESIS_HASH, Actor, AuditTarget, verify_chain
from controlplane.models import AuditChainHead, AuditEntry
from tests.factories import append_only_trigger_off, make_environment, make_version

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only triggers for DELETE exist only on PostgreSQL"
)
TARGET = AuditTarget(type="tests.thing", id="1", label="a thing")


def record(action: str = "thing.done", **overrides: object) -> AuditEntry:
    fields: dict[str, object] = {"actor": Actor.system("tests"), "action": action, "target": TARGET}
    fields.update(overrides)
    return audit.record(**fields)  # type: ignore[arg-type]


def test_record__two_entries__second_links_to_first() -> None:
    first, second = record(), record()

    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.entry_hash


def test_record__appended__head_holds_tip_and_count() -> None:
    record()
    last = record()

    head = AuditChainHead.objects.get()
    assert (head.last_hash, head.entry_count) == (last.entry_hash, 2)


def test_record__model_target__stores_label_type_and_id() -> None:
    version = make_version()

    entry = record(target=version)

    assert (entry.target_type, entry.target_id, entry.target_label) == (
        "flags.configversion",
        str(version.pk),
        str(version),
    )


def test_record__changes_with_decimal_and_datetime__hash_verifies_after_reload() -> None:
    changes = {"price": Decimal("1.25"), "when": datetime(2026, 11, 1, tzinfo=UTC)}

    record(changes=changes)

    assert AuditEntry.objects.get().changes == {"price": "1.25", "when": "2026-11-01T00:00:00Z"}
    assert verify_chain().ok


@pytest.mark.parametrize("number", [1e16, 1.2345678901234567e20, -0.0, 1e-7, 0.1, 10**30])
def test_record__number_the_database_rewrites__hash_verifies_after_reload(number: float) -> None:
    record(changes={"figure": number, "nested": [{"figure": number}]})

    assert verify_chain().ok


@time_machine.travel(datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC), tick=False)
def test_record__frozen_clock__created_at_is_now() -> None:
    entry = record()

    assert entry.created_at == datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_verify_chain__no_entries__ok() -> None:
    assert verify_chain().as_dict() == {"ok": True, "checked": 0, "first_broken_id": None, "problem": ""}


def test_verify_chain__fresh_chain__ok_and_counts_every_entry() -> None:
    for _ in range(5):
        record()

    status = verify_chain(batch_size=2)

    assert (status.ok, status.checked) == (True, 5)


def test_verify_chain__row_altered__names_first_altered_id() -> None:
    entries = [record() for _ in range(4)]
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk__in=[entries[1].pk, entries[3].pk]).update(reason="nothing happened")

    status = verify_chain()

    assert (status.ok, status.first_broken_id, status.checked) == (False, entries[1].pk, 1)
    assert "altered" in status.problem


def test_verify_chain__row_deleted__names_entry_after_the_gap() -> None:
    entries = [record() for _ in range(3)]
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk=entries[1].pk).delete()

    status = verify_chain()

    assert (status.ok, status.first_broken_id) == (False, entries[2].pk)
    assert "removed" in status.problem


def test_verify_chain__tail_truncated__head_mismatch_detected() -> None:
    entries = [record() for _ in range(3)]
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk=entries[-1].pk).delete()

    status = verify_chain()

    assert (status.ok, status.checked, status.first_broken_id) == (False, 2, None)
    assert "missing at the end" in status.problem


def test_audit_entry__update__rejected_by_database() -> None:
    entry = record()

    with pytest.raises(DatabaseError):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")


@postgresql_only
def test_audit_entry__delete_on_postgresql__rejected_by_trigger() -> None:
    entry = record()

    with pytest.raises(DatabaseError, match="append-only"):
        AuditEntry.objects.filter(pk=entry.pk).delete()


@postgresql_only
def test_config_version__update_on_postgresql__rejected_by_trigger() -> None:
    version = make_version()

    with pytest.raises(DatabaseError, match="immutable"):
        type(version).objects.filter(pk=version.pk).update(message="rewritten")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_record__two_threads_appending__chain_stays_linear() -> None:
    per_thread = 15
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def append(name: str) -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                record(actor=Actor.system(name))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(f"thread-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert verify_chain().as_dict() == {
        "ok": True,
        "checked": 2 * per_thread,
        "first_broken_id": None,
        "problem": "",
    }


def test_verify_chain__head_row_missing__reported(db):
    make_environment(key="head-check")
    AuditChainHead.objects.all().delete()

    status = verify_chain()

    assert status.ok is False
    assert "head is missing" in status.problem


def test_changed_fields__edit__only_the_fields_that_differ() -> None:
    before = {"name": "Chat", "owner": "ana", "surface": "chat"}
    after = {"name": "Support chat", "owner": "ana", "surface": "chat"}

    assert audit.changed_fields(before, after) == {"name": {"before": "Chat", "after": "Support chat"}}


def test_changed_fields__named_fields__absent_side_is_none() -> None:
    changes = audit.changed_fields(
        {"ttft_p95_ms": 900}, {"daily_cost_usd": "5"}, ["ttft_p95_ms", "daily_cost_usd"]
    )

    assert changes == {
        "ttft_p95_ms": {"before": 900, "after": None},
        "daily_cost_usd": {"before": None, "after": "5"},
    }
