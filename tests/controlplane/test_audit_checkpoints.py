"""Signed checkpoints of the audit chain, and TRUNCATE refused: a chain emptied or rewound as a
whole, with its head reset to match, no longer verifies."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, connection
from django.test import override_settings

from controlplane import audit
from controlplane.api import CHECKPOINT_HEADER
from controlplane.audit import GENESIS_HASH, Actor, AuditTarget, record_checkpoint, verify_chain
from controlplane.models import AuditChainHead, AuditCheckpoint, AuditEntry
from controlplane.tasks import checkpoint_audit_chain
from tests.factories import append_only_trigger_off, client_for

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="TRUNCATE is PostgreSQL's")
TARGET = AuditTarget(type="tests.thing", id="1", label="a thing")


def record(count: int, name: str = "tests") -> list[AuditEntry]:
    return [audit.record(actor=Actor.system(name), action="thing.done", target=TARGET) for _ in range(count)]


def empty_the_chain() -> None:
    """What TRUNCATE plus a reset head leaves: no entries, and a head that agrees."""
    with append_only_trigger_off():
        AuditEntry.objects.all().delete()
    AuditChainHead.objects.update(last_hash=GENESIS_HASH, entry_count=0)


@postgresql_only
def test_audit_entry__truncate_on_postgresql__refused_by_trigger() -> None:
    record(1)

    with pytest.raises(DatabaseError, match="append-only: TRUNCATE"), connection.cursor() as cursor:
        cursor.execute("TRUNCATE controlplane_auditentry")


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE controlplane_auditcheckpoint",
        "DELETE FROM controlplane_auditcheckpoint",
        "UPDATE controlplane_auditcheckpoint SET entry_count = 0",
    ],
)
def test_audit_checkpoint__rewrite_on_postgresql__refused_by_trigger(statement: str) -> None:
    record(1)
    record_checkpoint()

    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute(statement)


def test_audit_checkpoint__update__refused_by_database() -> None:
    checkpoint = record_checkpoint()

    with pytest.raises(DatabaseError):
        AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(entry_count=0)


def test_verify_chain__emptied_with_head_reset_after_a_checkpoint__truncation_reported() -> None:
    record(3)
    record_checkpoint()
    empty_the_chain()

    status = verify_chain()

    assert (status.ok, status.checked) == (False, 0)
    assert status.problem == "a checkpoint saw 3 entries and the chain has 0 (it was truncated or rewound)"


def test_verify_chain__rewound_and_rebuilt_longer__divergence_reported() -> None:
    record(3)
    record_checkpoint()
    empty_the_chain()
    rebuilt = record(5, name="someone-else")

    status = verify_chain()

    assert (status.ok, status.checked, status.first_broken_id) == (False, 3, rebuilt[2].pk)
    assert "differs from checkpoint" in status.problem


def test_verify_chain__grown_since_its_checkpoints__ok() -> None:
    record(2)
    record_checkpoint()
    record(2)
    record_checkpoint()
    record(1)

    assert verify_chain().as_dict() == {"ok": True, "checked": 5, "first_broken_id": None, "problem": ""}


def test_verify_chain__checkpoint_signed_with_another_key__reported_as_forged() -> None:
    record(1)
    with override_settings(SECRET_KEY="a-key-that-is-not-this-servers"):
        forged = record_checkpoint()

    status = verify_chain()

    assert (status.ok, status.first_broken_id) == (False, None)
    assert (
        status.problem == f"checkpoint #{forged.pk} is not signed with this server's key (forged or altered)"
    )


def test_verify_chain__checkpoint_signed_with_a_fallback_key__holds() -> None:
    record(2)
    record_checkpoint()

    with override_settings(
        SECRET_KEY="the-new-key-after-rotation", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]
    ):
        status = verify_chain()

    assert status.ok is True


def test_record_checkpoint__chain_unchanged__recorded_once() -> None:
    record(2)

    first, second = record_checkpoint(), record_checkpoint()

    assert first.pk == second.pk
    assert (AuditCheckpoint.objects.count(), first.entry_count) == (1, 2)


def test_checkpoint_task__called__anchors_the_head() -> None:
    entries = record(4)

    assert checkpoint_audit_chain() == 4
    assert AuditCheckpoint.objects.get().head_hash == entries[-1].entry_hash


def test_beat_schedule__checkpoint_task__scheduled() -> None:
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert checkpoint_audit_chain.name in names


def test_audit_export__any_format__records_a_checkpoint_and_hands_it_over(auditor: User) -> None:
    entries = record(2)

    response = client_for(auditor).get("/api/v1/audit/export/?format=jsonl")

    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.entry_count, checkpoint.head_hash) == (2, entries[-1].entry_hash)
    assert response[CHECKPOINT_HEADER].startswith(f"entries=2; head={entries[-1].entry_hash}; ")
    assert response[CHECKPOINT_HEADER].endswith(f"signature={checkpoint.signature}")
