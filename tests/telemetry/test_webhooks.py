import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings as SettingsWrapper

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.services import IssuedToken
from telemetry.models.incidents import DeliveryState, Webhook, WebhookDelivery, WebhookEvent
from telemetry.services import webhooks
from tests.factories import audit_mark, audit_since, client_for, make_token
from tests.telemetry.webhook_receiver import WebhookReceiver, running_receiver, slow_drip_receiver

pytestmark = pytest.mark.django_db
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACTOR = Actor.system("tests")
SECRET = "a-test-secret-of-some-length"
OPENED = WebhookEvent.INCIDENT_OPENED
RESOLVED = WebhookEvent.INCIDENT_RESOLVED


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    settings.FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver() as running:
        yield running


def make_webhook(url: str, **overrides: Any) -> Webhook:
    fields: dict[str, Any] = {"name": "pager", "events": [OPENED, RESOLVED], "secret": SECRET}
    fields.update(overrides)
    return webhooks.create_webhook(url=url, actor=ACTOR, **fields)


def queue(event: str = OPENED, payload: dict[str, Any] | None = None) -> list[WebhookDelivery]:
    return webhooks.enqueue_event(event=event, payload=payload or {"incident": {"id": 7}})


# creating and changing webhooks


def test_create_webhook__https_url__stored_with_audit_without_secret() -> None:
    mark = audit_mark()

    webhook = make_webhook("https://hooks.example.com/flagstaff")

    assert (webhook.active, webhook.events, webhook.secret) == (True, [OPENED, RESOLVED], SECRET)
    [entry] = audit_since(mark)
    assert entry.action == "webhook.created"
    assert SECRET not in json.dumps(entry.changes)


def test_create_webhook__no_secret__generates_a_long_one() -> None:
    webhook = make_webhook("https://hooks.example.com/x", secret="")

    assert len(webhook.secret) >= 32


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "http://localhost:8000/x",
        "not a url",
    ],
)
def test_create_webhook__url_not_https__invalid_on_url(url: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        make_webhook(url)

    assert raised.value.errors[0]["path"] == "url"


def test_create_webhook__loopback_http_when_not_allowed__invalid(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK = False

    with pytest.raises(InvalidInput):
        make_webhook("http://127.0.0.1:9/x")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://10.0.0.5/x", "10.0.0.5"),
        ("https://[::1]/x", "::1"),
        ("https://169.254.169.254/", "169.254.169.254"),
        ("https://localhost/x", "localhost"),
    ],
)
def test_create_webhook__private_address__invalid_on_url_naming_the_setting(url: str, host: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        make_webhook(url)

    assert raised.value.errors == [
        {
            "path": "url",
            "message": f"{host} is not a public address; receivers on private networks"
            " need FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES.",
        }
    ]


def test_create_webhook__private_address_when_allowed__stored(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True

    webhook = make_webhook("https://10.0.0.5/x")

    assert webhook.url == "https://10.0.0.5/x"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://2130706433/x", "Write the address 2130706433 as 127.0.0.1."),
        ("https://0177.0.0.1/x", "Write the address 0177.0.0.1 as 127.0.0.1."),
        ("https://127.1/x", "Write the address 127.1 as 127.0.0.1."),
        ("https://0x7f.0.0.1/x", "Write the address 0x7f.0.0.1 as 127.0.0.1."),
        ("http://127.1:9/x", "Write the address 127.1 as 127.0.0.1."),
        (
            "https://\u2460\u2461\u2466.0.0.1/x",
            "127.0.0.1 is not a public address; receivers on private networks"
            " need FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES.",
        ),
        ("https://hooks.example.com/x\r\nX-Injected: 1", "No spaces or control characters in the URL."),
        ("https://hooks.example.com/a b", "No spaces or control characters in the URL."),
        ("https://hooks.example.com:99999/x", "The port must be a number from 1 to 65535."),
        ("https://hooks.example.com:0/x", "The port must be a number from 1 to 65535."),
        ("https://%31%32%37.0.0.1/x", "%31%32%37.0.0.1 is not a host name or an IP address."),
    ],
    ids=["decimal", "octal", "short", "hex", "short-http", "circled-digits", "crlf", "space",
         "port-99999", "port-0", "percent-encoded"],
)  # fmt: skip
def test_create_webhook__another_spelling_of_a_refused_url__invalid_on_url(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        make_webhook(url)

    assert raised.value.errors == [{"path": "url", "message": message}]


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("  https://HOOKS.Example.COM/Path?q=1  ", "https://hooks.example.com/Path?q=1"),
        ("https://b\u00fccher.example:8443/x", "https://xn--bcher-kva.example:8443/x"),
        ("http://\u2460\u2461\u2466.0.0.1:9/x", "http://127.0.0.1:9/x"),
    ],
)
def test_create_webhook__url__stored_normalised(url: str, stored: str) -> None:
    assert make_webhook(url).url == stored


def test_update_webhook__url_in_another_spelling_of_loopback__invalid() -> None:
    webhook = make_webhook("https://hooks.example.com/x")

    with pytest.raises(InvalidInput):
        webhooks.update_webhook(webhook=webhook, changes={"url": "https://2130706433/x"}, actor=ACTOR)


@pytest.mark.parametrize("events", [[], ["incident.exploded"]])
def test_create_webhook__bad_events__invalid_on_events(events: list[str]) -> None:
    with pytest.raises(InvalidInput) as raised:
        make_webhook("https://hooks.example.com/x", events=events)

    assert raised.value.errors[0]["path"] == "events"


def test_deactivate_webhook__active__inactive_with_time_and_audit() -> None:
    webhook = make_webhook("https://hooks.example.com/x")
    mark = audit_mark()

    webhook = webhooks.deactivate_webhook(webhook=webhook, actor=ACTOR, reason="rotating")

    assert (webhook.active, webhook.deactivated_at is not None) == (False, True)
    assert [entry.action for entry in audit_since(mark)] == ["webhook.deactivated"]


def test_deactivate_webhook__already_inactive__conflict() -> None:
    webhook = webhooks.deactivate_webhook(webhook=make_webhook("https://hooks.example.com/x"), actor=ACTOR)

    with pytest.raises(Conflict):
        webhooks.deactivate_webhook(webhook=webhook, actor=ACTOR)


def test_update_webhook__no_change__no_audit_entry() -> None:
    webhook = make_webhook("https://hooks.example.com/x")
    mark = audit_mark()

    webhooks.update_webhook(webhook=webhook, changes={"name": "pager"}, actor=ACTOR)

    assert audit_since(mark) == []


# queueing


def test_enqueue_event__subscribed_active_webhooks__one_pending_row_each(receiver: WebhookReceiver) -> None:
    make_webhook(receiver.url, name="a")
    make_webhook(receiver.url, name="only-resolved", events=[RESOLVED])
    inactive = make_webhook(receiver.url, name="off")
    webhooks.deactivate_webhook(webhook=inactive, actor=ACTOR)

    deliveries = queue(OPENED)

    assert [(d.webhook.name, d.state, d.attempts) for d in deliveries] == [("a", DeliveryState.PENDING, 0)]


def test_enqueue_event__on_commit__nudges_one_task_per_delivery(
    receiver: WebhookReceiver, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_webhook(receiver.url)
    nudged: list[int] = []
    monkeypatch.setattr("telemetry.tasks.deliver_webhook.delay", nudged.append)

    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = queue()

    assert nudged == [delivery.pk]


# sending


def test_attempt_delivery__receiver_200__signed_post_and_delivered(receiver: WebhookReceiver) -> None:
    make_webhook(receiver.url)
    [delivery] = queue(payload={"incident": {"id": 7, "summary": "slow"}})

    state = webhooks.attempt_delivery(delivery_id=delivery.pk)

    assert state == DeliveryState.DELIVERED
    [request] = receiver.received
    assert webhooks.verify_signature(request.body, SECRET, request.headers["x-flagstaff-signature"])
    assert request.headers["x-flagstaff-signature"].startswith("sha256=")
    assert request.headers["x-flagstaff-delivery"] == str(delivery.pk)
    assert request.headers["x-flagstaff-event"] == OPENED
    assert request.headers["content-type"] == "application/json"
    assert int(request.headers["x-flagstaff-timestamp"]) > 0
    body = json.loads(request.body)
    assert (body["id"], body["event"], body["data"]) == (
        delivery.pk,
        OPENED,
        {"incident": {"id": 7, "summary": "slow"}},
    )
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status, delivery.last_error) == (
        "delivered",
        1,
        200,
        "",
    )
    assert delivery.delivered_at is not None


def test_attempt_delivery__signature__not_valid_for_another_secret(receiver: WebhookReceiver) -> None:
    make_webhook(receiver.url)
    [delivery] = queue()

    webhooks.attempt_delivery(delivery_id=delivery.pk)

    [request] = receiver.received
    assert not webhooks.verify_signature(
        request.body, "another-secret-entirely", request.headers["x-flagstaff-signature"]
    )


def test_attempt_delivery__500_then_200__retried_after_backoff_then_delivered(
    receiver: WebhookReceiver,
) -> None:
    receiver.statuses = [500]
    make_webhook(receiver.url)
    with time_machine.travel(NOON, tick=False):
        [delivery] = queue()

        first = webhooks.attempt_delivery(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (first, delivery.state, delivery.last_status, delivery.attempts) == (
            "pending",
            "pending",
            500,
            1,
        )
        assert delivery.next_attempt_at == NOON + timedelta(minutes=1)
        assert "500" in delivery.last_error
        assert webhooks.deliver_due() == 0  # not due yet

    with time_machine.travel(NOON + timedelta(minutes=1, seconds=1), tick=False):
        attempted = webhooks.deliver_due()

    delivery.refresh_from_db()
    assert (attempted, delivery.state, delivery.attempts, delivery.last_status) == (1, "delivered", 2, 200)
    first_try, second_try = receiver.received
    assert first_try.body == second_try.body  # same body, same delivery id: receivers de-duplicate
    assert first_try.headers["x-flagstaff-delivery"] == second_try.headers["x-flagstaff-delivery"]


def test_backoff_after__attempts__1m_5m_30m_2h_then_6h_repeating() -> None:
    waits = [webhooks.backoff_after(attempt) for attempt in range(1, 8)]

    assert [int(wait.total_seconds()) for wait in waits] == [60, 300, 1800, 7200, 21600, 21600, 21600]


def test_attempt_delivery__failing_until_max_attempts__failed_for_good(
    receiver: WebhookReceiver, settings: SettingsWrapper
) -> None:
    settings.FLAGSTAFF_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.statuses = [503, 503, 503, 200]
    make_webhook(receiver.url)
    moment = NOON
    with time_machine.travel(moment, tick=False):
        [delivery] = queue()
    for _ in range(5):
        with time_machine.travel(moment, tick=False):
            webhooks.deliver_due()
        moment += timedelta(hours=1)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status, delivery.next_attempt_at) == (
        "failed",
        3,
        503,
        None,
    )
    assert len(receiver.received) == 3


def test_attempt_delivery__nobody_listening__error_recorded_and_retry_scheduled() -> None:
    make_webhook("http://127.0.0.1:9/closed")  # the discard port: connection refused
    [delivery] = queue()

    state = webhooks.attempt_delivery(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (state, delivery.last_status, delivery.attempts) == ("pending", None, 1)
    assert delivery.last_error


def test_attempt_delivery__localhost_no_longer_allowed__refused_without_connecting(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    make_webhook("https://localhost:9/x")
    settings.FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(webhooks.socket, "create_connection", lambda *args: pytest.fail("connected"))
    [delivery] = queue()

    state = webhooks.attempt_delivery(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (state, delivery.last_status) == ("pending", None)
    assert delivery.last_error == (
        "refused: localhost is not a public address; receivers on private networks"
        " need FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES."
    )


def test_attempt_delivery__loopback_http_no_longer_allowed__refused_not_sent_over_tls(
    settings: SettingsWrapper, receiver: WebhookReceiver
) -> None:
    make_webhook(receiver.url)
    settings.FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK = False
    [delivery] = queue()

    webhooks.attempt_delivery(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.last_error == (
        "refused: Webhook URLs must use https (plain http only to 127.0.0.1 with"
        " FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK)."
    )
    assert receiver.received == []


def test_attempt_delivery__public_name_resolving_to_private_address__refused_and_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        webhooks.socket,
        "getaddrinfo",
        lambda host, port, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))],
    )
    make_webhook("https://hooks.example.com/x")
    with time_machine.travel(NOON, tick=False):
        [delivery] = queue()

        webhooks.attempt_delivery(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status, delivery.next_attempt_at) == (
        "pending",
        None,
        NOON + timedelta(minutes=1),
    )
    assert delivery.last_error == (
        "refused: hooks.example.com resolves to 10.0.0.5, not a public address"
        " (FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)"
    )


def test_attempt_delivery__url_stored_before_the_save_rule__refused_by_the_same_rule_unsent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook = make_webhook("https://hooks.example.com/x")
    # A row saved before the rule existed: the sender applies the rule the save applies.
    Webhook.objects.filter(pk=webhook.pk).update(url="https://2130706433/x")
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda *args, **kwargs: pytest.fail("looked up"))
    [delivery] = queue()

    webhooks.attempt_delivery(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.last_status, delivery.last_error) == (
        None,
        "refused: Write the address 2130706433 as 127.0.0.1.",
    )


def test_attempt_delivery__slow_drip_receiver__given_up_when_the_timeout_runs_out(
    settings: SettingsWrapper,
) -> None:
    settings.FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS = 1
    with slow_drip_receiver(byte_every_seconds=0.2, for_seconds=8) as url:
        make_webhook(url)
        [delivery] = queue()
        started = time.monotonic()

        webhooks.attempt_delivery(delivery_id=delivery.pk)

        elapsed = time.monotonic() - started
    delivery.refresh_from_db()
    # Each byte comes well within the timeout, so only a deadline on the whole delivery stops it.
    assert elapsed < 2.5
    assert (delivery.state, delivery.last_status) == ("pending", None)
    assert delivery.last_error == "timed out: the delivery took longer than 1 s"


def test_attempt_delivery__redirect__not_followed_and_counted_as_failure(receiver: WebhookReceiver) -> None:
    receiver.statuses = [302]
    make_webhook(receiver.url)
    [delivery] = queue()

    webhooks.attempt_delivery(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status, len(receiver.received)) == ("pending", 302, 1)


def test_attempt_delivery__webhook_deactivated_meanwhile__failed_without_sending(
    receiver: WebhookReceiver,
) -> None:
    webhook = make_webhook(receiver.url)
    [delivery] = queue()
    webhooks.deactivate_webhook(webhook=webhook, actor=ACTOR)

    state = webhooks.attempt_delivery(delivery_id=delivery.pk)

    assert (state, receiver.received) == ("failed", [])


def test_attempt_delivery__already_delivered__not_sent_again(receiver: WebhookReceiver) -> None:
    make_webhook(receiver.url)
    [delivery] = queue()
    webhooks.attempt_delivery(delivery_id=delivery.pk)

    again = webhooks.attempt_delivery(delivery_id=delivery.pk)

    assert (again, len(receiver.received)) == (None, 1)


def test_attempt_delivery__claimed_by_another_sender__skipped(receiver: WebhookReceiver) -> None:
    make_webhook(receiver.url)
    with time_machine.travel(NOON, tick=False):
        [delivery] = queue()
        # Another sender's claim: attempts bumped and the row leased into the future.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=1, next_attempt_at=NOON + timedelta(seconds=70)
        )

        state = webhooks.attempt_delivery(delivery_id=delivery.pk)

    assert (state, receiver.received) == (None, [])


def test_deliver_due__sender_died_mid_request__retried_once_lease_runs_out(receiver: WebhookReceiver) -> None:
    make_webhook(receiver.url)
    with time_machine.travel(NOON, tick=False):
        [delivery] = queue()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=1, next_attempt_at=NOON + timedelta(seconds=70)
        )

    with time_machine.travel(NOON + timedelta(seconds=71), tick=False):
        attempted = webhooks.deliver_due()

    delivery.refresh_from_db()
    assert (attempted, delivery.state, delivery.attempts) == (1, "delivered", 2)


# API


WEBHOOKS_URL = "/api/v1/webhooks/"


def test_webhooks_api_post__admin__201_with_secret_once_then_never(admin: User) -> None:
    api = client_for(admin)

    created = api.post(WEBHOOKS_URL, {"name": "pager", "url": "https://hooks.example.com/x"}, format="json")
    listed = api.get(WEBHOOKS_URL).json()
    detail = api.get(f"{WEBHOOKS_URL}{created.json()['id']}/").json()

    assert created.status_code == 201
    assert len(created.json()["secret"]) >= 32
    assert created.json()["events"] == sorted(WebhookEvent.values)  # every event, rollouts' included
    assert "secret" not in listed["results"][0]
    assert "secret" not in detail


def test_webhooks_api_post__http_url__400_with_url_path(admin: User) -> None:
    response = client_for(admin).post(
        WEBHOOKS_URL, {"name": "p", "url": "http://example.com/x"}, format="json"
    )

    assert (response.status_code, response.json()["errors"][0]["path"]) == (400, "url")


def test_webhooks_api_patch__events_and_active__updated(admin: User) -> None:
    webhook = make_webhook("https://hooks.example.com/x")

    response = client_for(admin).patch(
        f"{WEBHOOKS_URL}{webhook.pk}/", {"events": [RESOLVED], "active": False}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["events"], response.json()["active"]) == ([RESOLVED], False)


def test_webhooks_api_delete__active__deactivated_and_log_kept(
    admin: User, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(receiver.url)
    queue()

    response = client_for(admin).delete(f"{WEBHOOKS_URL}{webhook.pk}/")

    assert (response.status_code, response.json()["active"]) == (200, False)
    assert WebhookDelivery.objects.filter(webhook=webhook).count() == 1


def test_webhook_deliveries_api_get__admin__log_newest_first(admin: User, receiver: WebhookReceiver) -> None:
    webhook = make_webhook(receiver.url)
    [first] = queue(OPENED)
    webhooks.attempt_delivery(delivery_id=first.pk)
    [second] = queue(RESOLVED)

    body = client_for(admin).get(f"{WEBHOOKS_URL}{webhook.pk}/deliveries/").json()

    assert [(row["id"], row["state"]) for row in body["results"]] == [
        (second.pk, "pending"),
        (first.pk, "delivered"),
    ]


@pytest.mark.parametrize("method", ["get", "post"])
def test_webhooks_api__editor__403(editor: User, method: str) -> None:
    response = getattr(client_for(editor), method)(WEBHOOKS_URL, {}, format="json")

    assert response.status_code == 403


def test_webhooks_api__anonymous__401(anonymous_client: Any) -> None:
    assert anonymous_client.get(WEBHOOKS_URL).status_code == 401


def test_webhooks_api__read_write_token__403(service_token: IssuedToken) -> None:
    webhook = make_webhook("https://hooks.example.com/x")
    api = client_for(service_token)

    assert api.get(WEBHOOKS_URL).status_code == 403
    assert api.delete(f"{WEBHOOKS_URL}{webhook.pk}/").status_code == 403
    assert api.get(f"{WEBHOOKS_URL}{webhook.pk}/deliveries/").status_code == 403


def test_webhooks_api__admin_token__200() -> None:
    token = make_token(scopes=["admin"])

    assert client_for(token).get(WEBHOOKS_URL).status_code == 200
