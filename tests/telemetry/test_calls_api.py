from __future__ import annotations

import gzip

import orjson
import pytest
from django.test import override_settings

from controlplane.models import Role
from telemetry.models import CallRecord, Rollup
from tests.factories import client_for, make_environment, make_token, make_user, make_version
from tests.telemetry.call_factories import flag_state_for, make_record, seed_prices

URL = "/api/v1/telemetry/calls"


@pytest.fixture
def sender(db):
    """A service's telemetry token, not bound to an environment."""
    seed_prices()
    return client_for(make_token(scopes=["telemetry"], name="support-bot"))


def post(client, body, **headers):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.generic("POST", URL, data, content_type="application/json", **headers)


def test_calls_api__valid_batch__reports_what_was_accepted(sender):
    response = post(sender, {"records": [make_record(), make_record()]})

    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "duplicate": 0,
        "rejected": [],
        "unattributed": 2,
        "unknown_cost": 0,
        "samples_stored": 0,
        "samples_dropped": 0,
    }


def test_calls_api__no_credentials__401(anonymous_client):
    response = post(anonymous_client, {"records": [make_record()]})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_calls_api__token_without_telemetry_scope__403(service_token):
    response = post(client_for(service_token), {"records": [make_record()]})

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert not CallRecord.objects.exists()


def test_calls_api__viewer_session__403(viewer):
    response = post(client_for(viewer), {"records": [make_record()]})

    assert response.status_code == 403


def test_calls_api__admin_session__accepted(db):
    seed_prices()
    client = client_for(make_user(role=Role.ADMIN))
    client.enforce_csrf_checks = False

    response = post(client, {"records": [make_record()]})

    assert response.json()["accepted"] == 1


def test_calls_api__revoked_token__401(db):
    issued = make_token(scopes=["telemetry"])
    issued.token.revoked_at = issued.token.created_at
    issued.token.save()

    response = post(client_for(issued), {"records": [make_record()]})

    assert response.status_code == 401


def test_calls_api__environment_bound_token__only_its_environment_accepted(db):
    seed_prices()
    production, staging = make_environment(key="production"), make_environment(key="staging")
    version = make_version()
    client = client_for(make_token(scopes=["telemetry"], environment=production))
    records = [
        make_record(flag_state=flag_state_for(production, version)),
        make_record(flag_state=flag_state_for(staging, version)),
    ]

    body = post(client, {"records": records}).json()

    assert body["accepted"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "errors": [
                {
                    "path": "records[1].flag_state",
                    "message": "Names environment 'staging'; this token is bound to 'production'.",
                }
            ],
        }
    ]


def test_calls_api__gzip_body__decompressed_and_stored(sender):
    body = gzip.compress(orjson.dumps({"records": [make_record() for _ in range(3)]}))

    response = post(sender, body, HTTP_CONTENT_ENCODING="gzip")

    assert response.json()["accepted"] == 3


def test_calls_api__corrupt_gzip__400(sender):
    response = post(sender, b"\x1f\x8bnot really gzip", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


@override_settings(FLAGSTAFF_TELEMETRY_MAX_BODY_BYTES=64 * 1024)
def test_calls_api__gzip_expanding_past_the_limit__413_without_inflating_it_all(sender):
    bomb = gzip.compress(b'{"records": [' + b" " * (50 * 1024 * 1024) + b"]}")

    response = post(sender, bomb, HTTP_CONTENT_ENCODING="gzip")

    assert len(bomb) < 100 * 1024
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_calls_api__unknown_content_encoding__415(sender):
    response = post(sender, {"records": []}, HTTP_CONTENT_ENCODING="br")

    assert response.status_code == 415


def test_calls_api__form_content_type__415(sender):
    response = sender.generic("POST", URL, "records=1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415


def test_calls_api__over_1000_records__413_and_nothing_stored(sender):
    response = post(sender, {"records": [make_record() for _ in range(1001)]})

    assert response.status_code == 413
    assert response.json()["code"] == "too_many_records"
    assert not CallRecord.objects.exists()


def test_calls_api__exactly_1000_records__accepted(sender):
    response = post(sender, {"records": [make_record() for _ in range(1000)]})

    assert response.json()["accepted"] == 1000


def test_calls_api__body_over_5_mib__413(sender):
    padding = "x" * (5 * 1024 * 1024)

    response = post(sender, {"records": [make_record(session_id=padding)]})

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_calls_api__invalid_json__400(sender):
    response = post(sender, b'{"records": [')

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


@pytest.mark.parametrize("value", [b"1e400", b"-1e999"])
def test_calls_api__number_json_decoders_refuse_in_a_record__400_and_nothing_stored(sender, value):
    body = (
        b'{"records": [' + orjson.dumps(make_record()) + b', {"request_id": "r", "model": "m", "latency_ms": '
    )
    response = post(sender, body + value + b"}]}")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"
    assert not CallRecord.objects.exists()


def test_calls_api__nul_character_in_a_record__that_record_rejected_at_its_path(sender):
    records = [make_record(), make_record(session_id="sess\x00ion")]

    body = post(sender, {"records": records}).json()

    assert body["accepted"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "errors": [{"path": "records[1].session_id", "message": "Must not contain NUL characters."}],
        }
    ]


def test_calls_api__batches_with_invalid_and_repeated_records__loss_check_exact(sender):
    batches = []
    for number in range(4):
        records = [make_record(latency_ms=10 * i) for i in range(20)]
        records[3] = make_record(usage={"output_tokens": -1})  # rejected
        records[7] = dict(records[5])  # the same call twice in a batch
        batches.append({"records": records})
        if number % 2:
            batches.append({"records": records})  # a retried batch

    answers = [post(sender, batch).json() for batch in batches]

    sent = sum(len(batch["records"]) for batch in batches)
    accepted = sum(answer["accepted"] for answer in answers)
    duplicate = sum(answer["duplicate"] for answer in answers)
    rejected = sum(len(answer["rejected"]) for answer in answers)
    assert (sent, accepted, duplicate, rejected) == (120, 4 * 18, 4 * 1 + 2 * 19, 6)
    assert sent == accepted + duplicate + rejected
    assert CallRecord.objects.count() == accepted
    assert sum(Rollup.objects.values_list("calls", flat=True)) == accepted


@pytest.mark.parametrize("body", [[], {"records": {}}, {"calls": []}])
def test_calls_api__body_without_a_records_list__400_at_records(sender, body):
    response = post(sender, body)

    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "records", "message": "Must be a list of call records."}]


def test_calls_api__partly_invalid_batch__valid_records_stored_and_others_explained(sender):
    records = [
        make_record(),
        make_record(usage={"output_tokens": -5}),
        make_record(timestamp="2999-01-01T00:00:00Z"),
    ]

    body = post(sender, {"records": records}).json()

    assert body["accepted"] == 1
    assert [(r["index"], r["errors"][0]["path"]) for r in body["rejected"]] == [
        (1, "records[1].usage.output_tokens"),
        (2, "records[2].timestamp"),
    ]
    assert CallRecord.objects.count() == 1


def test_calls_api__batch_sent_twice__second_answer_all_duplicates(sender):
    batch = {"records": [make_record(), make_record()]}
    post(sender, batch)

    body = post(sender, batch).json()

    assert (body["accepted"], body["duplicate"]) == (0, 2)
    assert Rollup.objects.get().calls == 2


def test_calls_api__unknown_model__counted_as_unknown_cost(sender):
    body = post(sender, {"records": [make_record(model="claude-future-9")]}).json()

    assert body["unknown_cost"] == 1


def test_calls_api__get__405(sender):
    response = sender.get(URL)

    assert response.status_code == 405
