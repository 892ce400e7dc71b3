"""Webhooks: managing receivers, queueing events as delivery rows, and sending them signed.

Every delivery is a row (the due work and its log). A sender claims a row by a conditional
UPDATE, sends it outside any transaction, and records the outcome with a second conditional
UPDATE; failures are retried on a backoff schedule until the attempts run out. A receiver
verifies `X-Flagstaff-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the
secret>` and de-duplicates on `X-Flagstaff-Delivery` (a retry re-sends the same body).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import re
import secrets
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.free_text import check_free_text, column_limit
from telemetry.models.incidents import DeliveryState, Webhook, WebhookDelivery, WebhookEvent

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Flagstaff-Signature"
DELIVERY_HEADER = "X-Flagstaff-Delivery"
EVENT_HEADER = "X-Flagstaff-Event"
TIMESTAMP_HEADER = "X-Flagstaff-Timestamp"
USER_AGENT = "Flagstaff-Webhooks/1"
MAX_ERROR_CHARS = 500
SWEEP_BATCH = 100


# Receivers


def _loopback_http(parts: SplitResult) -> bool:
    """Plain http to 127.0.0.1, allowed by FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK (tests, demos)."""
    return (
        parts.scheme == "http"
        and parts.hostname == "127.0.0.1"
        and settings.FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK
    )


def _names_private_host(host: str) -> bool:
    """Whether the host is a non-public address or `localhost` as written; no DNS lookup."""
    if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _refuse(problem: str) -> NoReturn:
    raise InvalidInput(problem, errors=[{"path": "url", "message": problem}])


def _normalised_host(host: str) -> str:
    """The host as the resolver reads it: IDNA (NFKC, so U+2460 is 1) and lower case; refused
    when the resolver would read it as an address spelt another way than four decimal numbers
    (inet_aton takes 2130706433, 0177.0.0.1, 127.1 and 0x7f.0.0.1 for 127.0.0.1)."""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            _refuse(f"{host} is not a valid host name.")
    host = host.lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    try:
        packed = socket.inet_aton(host)
    except OSError:
        if not _HOST_NAME.fullmatch(host):
            _refuse(f"{host} is not a host name or an IP address.")
        return host
    _refuse(f"Write the address {host} as {socket.inet_ntoa(packed)}.")


_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")


def _check_url(url: str) -> str:
    """The URL normalised (host in IDNA, lower case), or InvalidInput on `url`.

    The one rule for a receiver's URL, applied when it is saved and again before each send.
    """
    url = url.strip()
    if len(url) > 500:
        _refuse("At most 500 characters.")
    # urlsplit silently drops CR, LF and tab; the URL must not need that.
    if any(char.isspace() or not char.isprintable() for char in url):
        _refuse("No spaces or control characters in the URL.")
    try:
        parts = urlsplit(url)
    except ValueError:
        _refuse("Not a valid URL.")
    try:
        port = parts.port
    except ValueError:
        _refuse("The port must be a number from 1 to 65535.")
    if port == 0:
        _refuse("The port must be a number from 1 to 65535.")
    if not parts.hostname:
        _refuse("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        _refuse("Put credentials in the secret, not in the URL.")
    host = _normalised_host(parts.hostname)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    parts = parts._replace(netloc=netloc)
    loopback_http = _loopback_http(parts)
    if parts.scheme != "https" and not loopback_http:
        _refuse(
            "Webhook URLs must use https (plain http only to 127.0.0.1 with"
            " FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK)."
        )
    if (
        not loopback_http
        and not settings.FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES
        and _names_private_host(host)
    ):
        _refuse(
            f"{host} is not a public address; receivers on private networks"
            " need FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES."
        )
    return urlunsplit(parts)


def _check_events(events: Iterable[str]) -> list[str]:
    chosen = sorted(set(events))
    unknown = [event for event in chosen if event not in WebhookEvent.values]
    if not chosen or unknown:
        message = f"Choose one or more of: {', '.join(WebhookEvent.values)}."
        raise InvalidInput(message, errors=[{"path": "events", "message": message}])
    return chosen


def _fields(webhook: Webhook) -> dict[str, Any]:
    return {"name": webhook.name, "url": webhook.url, "events": webhook.events, "active": webhook.active}


@transaction.atomic
def create_webhook(*, name: str, url: str, events: Sequence[str], actor: Actor, secret: str = "") -> Webhook:
    """Register a receiver; without a secret one is generated. The caller shows it once."""
    if not name.strip():
        raise InvalidInput("A webhook needs a name.", errors=[{"path": "name", "message": "Required."}])
    check_free_text({"name": name.strip()}, limits={"name": column_limit(Webhook, "name")})
    secret = secret.strip() or secrets.token_urlsafe(32)
    if len(secret) < 16 or len(secret) > 200:
        raise InvalidInput(
            "The secret must be 16 to 200 characters.",
            errors=[{"path": "secret", "message": "16 to 200 characters."}],
        )
    webhook = Webhook.objects.create(
        name=name.strip(),
        url=_check_url(url),
        secret=secret,
        events=_check_events(events),
        created_by_name=actor.name,
    )
    # The secret never goes into the audit log.
    audit.record(actor=actor, action="webhook.created", target=webhook, changes={"after": _fields(webhook)})
    return webhook


@transaction.atomic
def update_webhook(
    *, webhook: Webhook, changes: Mapping[str, Any], actor: Actor, reason: str = ""
) -> Webhook:
    """Change name, url, events or active; reactivating clears `deactivated_at`."""
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    before = _fields(webhook)
    if "name" in changes:
        if not str(changes["name"]).strip():
            raise InvalidInput("A webhook needs a name.", errors=[{"path": "name", "message": "Required."}])
        name = str(changes["name"]).strip()
        check_free_text({"name": name}, limits={"name": column_limit(Webhook, "name")})
        webhook.name = name
    if "url" in changes:
        webhook.url = _check_url(str(changes["url"]))
    if "events" in changes:
        webhook.events = _check_events(changes["events"])
    if "active" in changes and bool(changes["active"]) != webhook.active:
        webhook.active = bool(changes["active"])
        webhook.deactivated_at = None if webhook.active else timezone.now()
    after = _fields(webhook)
    diff = audit.changed_fields(before, after)
    if not diff:
        return webhook
    webhook.save()
    action = "webhook.updated"
    if set(diff) == {"active"}:
        action = "webhook.activated" if webhook.active else "webhook.deactivated"
    audit.record(actor=actor, action=action, target=webhook, changes=diff, reason=reason)
    return webhook


def deactivate_webhook(*, webhook: Webhook, actor: Actor, reason: str = "") -> Webhook:
    """Stop sending to a receiver; its pending deliveries fail at their next attempt."""
    if not webhook.active:
        raise Conflict(f"Webhook '{webhook.name}' is already inactive.", code="already_inactive")
    return update_webhook(webhook=webhook, changes={"active": False}, actor=actor, reason=reason)


# Queueing


def enqueue_event(*, event: str, payload: Mapping[str, Any]) -> list[WebhookDelivery]:
    """Queue `event` for every active webhook subscribed to it, in the caller's transaction.

    The rows are the work: the sweep sends them even if the nudge sent on commit is lost.
    """
    now = timezone.now()
    payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    # One insert per receiver: there are a handful, and each id is needed for the nudge.
    deliveries = [
        WebhookDelivery.objects.create(
            webhook=webhook, event=event, payload=payload, next_attempt_at=now, created_at=now
        )
        for webhook in Webhook.objects.active()
        if webhook.receives(event)
    ]
    if deliveries:
        ids = [delivery.pk for delivery in deliveries]

        def nudge() -> None:
            from telemetry.tasks import deliver_webhook

            for delivery_id in ids:
                deliver_webhook.delay(delivery_id)

        # robust: a broker outage must not fail the caller; the sweep sends the rows anyway.
        transaction.on_commit(nudge, robust=True)
    return deliveries


# Sending


def sign(body: bytes, secret: str) -> str:
    """The value of the signature header for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does (and what the tests check): constant-time comparison."""
    return hmac.compare_digest(sign(body, secret), header)


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes posted; the same on every attempt, so the signature is stable."""
    document = {
        "id": delivery.pk,
        "event": delivery.event,
        "created_at": delivery.created_at,
        "data": delivery.payload,
    }
    return json.dumps(document, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode()


def backoff_after(attempt: int) -> timedelta:
    """Wait before the retry that follows `attempt` (1-based): 1 min, 5 min, 30 min, 2 h, 6 h..."""
    schedule = settings.FLAGSTAFF_WEBHOOK_BACKOFF_SECONDS
    return timedelta(seconds=schedule[min(attempt, len(schedule)) - 1])


class _Refused(Exception):
    """The receiver's name resolves to an address webhooks may not reach."""


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's trust store, read once per process rather than once per delivery."""
    return ssl.create_default_context()


class _PublicHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS that connects to the address it vetted, not to a second lookup (DNS rebinding)."""

    def connect(self) -> None:
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        private = [address for address in addresses if not ipaddress.ip_address(address).is_global]
        if private and not settings.FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
            raise _Refused(
                f"refused: {self.host} resolves to {private[0]}, not a public address"
                " (FLAGSTAFF_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)"
            )
        sock = socket.create_connection((addresses[0], self.port), self.timeout)
        # The certificate and SNI are checked against the name, not the address.
        self.sock = _tls_context().wrap_socket(sock, server_hostname=self.host)


class _Deadline:
    """Shuts the connection's socket down when the delivery's time is up.

    A socket timeout bounds each read, so a receiver that sends a byte now and then would hold a
    sender for as long as it likes; shutting the socket down from a timer ends whichever read
    or write is waiting, and the delivery with it.
    """

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connection = connection
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        sock = self._connection.sock
        if sock is not None:
            # socket.socket's shutdown, not SSLSocket's, which would first drop its TLS state
            # under the thread reading through it.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int | None, str]:
    """POST and return (status, error text); status None when no HTTP answer came back.

    The URL is checked by the rule its save was checked by (it may predate a stricter rule).
    http.client never follows redirects: a redirect is an answer, and the signed body goes only
    to the stored URL. FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS bounds the whole delivery.
    """
    try:
        url = _check_url(url)
    except InvalidInput as refusal:
        return None, f"refused: {refusal.detail}"
    parts = urlsplit(url)
    connection_class = http.client.HTTPConnection if _loopback_http(parts) else _PublicHTTPSConnection
    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    timeout = settings.FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    deadline = _Deadline(connection, timeout)
    try:
        with deadline, contextlib.closing(connection):
            connection.request("POST", target, body=body, headers=dict(headers))
            response = connection.getresponse()
    except _Refused as refusal:
        return None, str(refusal)
    except (OSError, ValueError, http.client.HTTPException) as error:
        if deadline.expired:
            return None, f"timed out: the delivery took longer than {timeout} s"
        return None, f"{type(error).__name__}: {error}"
    if 200 <= response.status < 300:
        return response.status, ""
    return response.status, f"HTTP {response.status} {response.reason}"


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Take the row for one attempt; None when it is not due or another sender took it."""
    row = (
        WebhookDelivery.objects.filter(pk=delivery_id).values("attempts", "state", "next_attempt_at").first()
    )
    if row is None or row["state"] != DeliveryState.PENDING:
        return None
    if row["next_attempt_at"] is None or row["next_attempt_at"] > now:
        return None
    lease = timedelta(seconds=settings.FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS + 60)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, attempts=row["attempts"], next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + lease, last_attempt_at=now)
    if claimed != 1:
        return None
    return WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)


def attempt_delivery(*, delivery_id: int) -> str | None:
    """Make one attempt at a due delivery; returns its new state, or None if not ours to send.

    Idempotent per attempt: the claim only succeeds while the row is pending, due and still at
    the attempt count this sender read.
    """
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    attempt = delivery.attempts
    webhook = delivery.webhook
    if not webhook.receives(delivery.event):
        status: int | None = None
        error = "The webhook was deactivated or unsubscribed from this event."
        final = True
    else:
        body = delivery_body(delivery)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: str(delivery.pk),
            TIMESTAMP_HEADER: str(int(now.timestamp())),
            SIGNATURE_HEADER: sign(body, webhook.secret),
        }
        status, error = _post(webhook.url, body, headers)
        final = attempt >= settings.FLAGSTAFF_WEBHOOK_MAX_ATTEMPTS
    finished = timezone.now()
    fields: dict[str, Any] = {"last_status": status, "last_error": error[:MAX_ERROR_CHARS]}
    if not error:
        fields |= {"state": DeliveryState.DELIVERED, "delivered_at": finished, "next_attempt_at": None}
    elif final:
        fields |= {"state": DeliveryState.FAILED, "next_attempt_at": None}
    else:
        fields |= {"next_attempt_at": finished + backoff_after(attempt)}
    # Guarded by the attempt we claimed: a sender whose lease ran out cannot overwrite a newer try.
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=attempt, state=DeliveryState.PENDING).update(
        **fields
    )
    log = logger.info if not error else logger.warning
    log(
        "webhook delivery %s attempt %s to webhook %s: %s",
        delivery.pk,
        attempt,
        webhook.pk,
        fields.get("state", "retry scheduled") if error else "delivered",
        extra={"delivery_id": delivery.pk, "webhook_id": webhook.pk, "status": status},
    )
    return str(fields.get("state", DeliveryState.PENDING))


def deliver_due(*, limit: int = SWEEP_BATCH) -> int:
    """Attempt every due delivery (oldest first, at most `limit`); returns how many were attempted."""
    due = list(
        WebhookDelivery.objects.due(timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(attempt_delivery(delivery_id=delivery_id) is not None for delivery_id in due)
