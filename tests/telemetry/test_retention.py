from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from telemetry import tasks
from telemetry.models import CallRecord, Rollup, Sample
from telemetry.services.ingest import ingest_calls
from telemetry.services.retention import delete_expired_telemetry
from tests.telemetry.call_factories import at, make_record, seed_prices

START = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def old_and_new_calls(db):
    """Two calls with samples on START, one more 20 days later."""
    seed_prices()
    sample = {"input": "question", "output": "answer"}
    with time_machine.travel(START, tick=False):
        ingest_calls(records=[make_record(timestamp=at(START), sample=sample) for _ in range(2)])
    later = START + timedelta(days=20)
    with time_machine.travel(later, tick=False):
        ingest_calls(records=[make_record(timestamp=at(later), sample=sample)])


@override_settings(FLAGSTAFF_TELEMETRY_RETENTION_DAYS=30, FLAGSTAFF_SAMPLE_RETENTION_DAYS=60)
def test_apply_retention__calls_past_retention__deleted_with_their_samples(old_and_new_calls):
    with time_machine.travel(START + timedelta(days=31), tick=False):
        outcome = tasks.apply_retention()

    assert outcome == {"calls": 2, "samples": 0}
    assert (CallRecord.objects.count(), Sample.objects.count()) == (1, 1)


@override_settings(FLAGSTAFF_TELEMETRY_RETENTION_DAYS=30, FLAGSTAFF_SAMPLE_RETENTION_DAYS=14)
def test_apply_retention__samples_past_their_shorter_retention__deleted_and_calls_kept(old_and_new_calls):
    with time_machine.travel(START + timedelta(days=15), tick=False):
        outcome = tasks.apply_retention()

    assert outcome == {"calls": 0, "samples": 2}
    assert (CallRecord.objects.count(), Sample.objects.count()) == (3, 1)


@override_settings(FLAGSTAFF_TELEMETRY_RETENTION_DAYS=30)
def test_apply_retention__calls_deleted__rollups_kept(old_and_new_calls):
    with time_machine.travel(START + timedelta(days=60), tick=False):
        tasks.apply_retention()

    assert not CallRecord.objects.exists()
    assert sum(Rollup.objects.values_list("calls", flat=True)) == 3


@override_settings(FLAGSTAFF_TELEMETRY_RETENTION_DAYS=30, FLAGSTAFF_SAMPLE_RETENTION_DAYS=30)
def test_apply_retention__within_retention__deletes_nothing(old_and_new_calls):
    with time_machine.travel(START + timedelta(days=29), tick=False):
        outcome = tasks.apply_retention()

    assert outcome == {"calls": 0, "samples": 0}


@override_settings(FLAGSTAFF_TELEMETRY_RETENTION_DAYS=30)
def test_apply_retention__run_twice__second_run_finds_nothing(old_and_new_calls):
    with time_machine.travel(START + timedelta(days=31), tick=False):
        tasks.apply_retention()
        outcome = tasks.apply_retention()

    assert outcome == {"calls": 0, "samples": 0}


@override_settings(FLAGSTAFF_TELEMETRY_RETENTION_DAYS=1)
def test_delete_expired_telemetry__more_rows_than_a_batch__deletes_them_all(db):
    seed_prices()
    with time_machine.travel(START, tick=False):
        ingest_calls(records=[make_record(timestamp=at(START)) for _ in range(7)])

    outcome = delete_expired_telemetry(now=START + timedelta(days=2), batch_size=3)

    assert outcome["calls"] == 7
    assert not CallRecord.objects.exists()
