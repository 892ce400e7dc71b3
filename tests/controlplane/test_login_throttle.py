"""Login throttling on /login/ and /admin/login/: per account and per client address, a clear
message, one audit entry per lockout; on the in-process cache and (services pass) on Redis."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from pytest_django.fixtures import Settings as SettingsWrapper

from controlplane import login_throttle
from controlplane.models import Role
from tests.factories import audit_mark, audit_since, make_user

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _limits(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
    settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ADDRESS = 50
    settings.FLAGSTAFF_LOGIN_LOCKOUT_SECONDS = 900


@pytest.fixture
def operator() -> User:
    user = make_user(role=Role.ADMIN, username="operator", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def log_in(path: str, username: str, password: str, address: str = "198.51.100.7") -> tuple[Client, bytes]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password})
    return client, response.content


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_login__many_wrong_passwords__right_one_refused_with_message_and_one_audit_entry(
    operator: User, path: str
) -> None:
    mark = audit_mark()
    for _ in range(40):
        log_in(path, "operator", "wrong")

    client, content = log_in(path, "operator", PASSWORD)

    assert not logged_in(client)
    assert b"Too many failed logins for this account: logging in is paused for up to 15 minutes." in content
    [entry] = audit_since(mark)
    assert (entry.action, entry.target_type, entry.target_label) == (
        "auth.login_locked_out",
        "auth.account",
        "operator",
    )
    assert entry.changes["failures"] == 5
    assert entry.changes["address"] == "198.51.100.7"


def test_login__fewer_failures_than_the_limit__right_password_logs_in(operator: User) -> None:
    for _ in range(4):
        log_in("/login/", "operator", "wrong")

    client, _ = log_in("/login/", "operator", PASSWORD)

    assert logged_in(client)


def test_login__success__clears_the_account_count(operator: User) -> None:
    for _ in range(4):
        log_in("/login/", "operator", "wrong")
    log_in("/login/", "operator", PASSWORD)
    for _ in range(4):
        log_in("/login/", "operator", "wrong")

    client, _ = log_in("/login/", "operator", PASSWORD)

    assert logged_in(client)


def test_login__account_locked__other_account_same_address_still_logs_in(operator: User) -> None:
    other = make_user(username="other")
    other.set_password(PASSWORD)
    other.save()
    for _ in range(5):
        log_in("/login/", "operator", "wrong")

    client, _ = log_in("/login/", "other", PASSWORD)

    assert logged_in(client)


def test_login__many_accounts_tried_from_one_address__address_locked_and_audited(
    settings: SettingsWrapper, operator: User
) -> None:
    settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    mark = audit_mark()
    for name in ("alice", "bob", "carol", "dave"):
        log_in("/login/", name, "wrong", address="203.0.113.9")

    blocked, content = log_in("/login/", "operator", PASSWORD, address="203.0.113.9")
    elsewhere, _ = log_in("/login/", "operator", PASSWORD, address="203.0.113.10")

    assert not logged_in(blocked)
    assert b"Too many failed logins from your address" in content
    assert logged_in(elsewhere)
    assert [(entry.action, entry.target_type, entry.target_id) for entry in audit_since(mark)] == [
        ("auth.login_locked_out", "auth.client_address", "203.0.113.9")
    ]


def test_login__window_over__right_password_logs_in_again(settings: SettingsWrapper, operator: User) -> None:
    settings.FLAGSTAFF_LOGIN_LOCKOUT_SECONDS = 1
    for _ in range(5):
        log_in("/login/", "operator", "wrong")
    assert not logged_in(log_in("/login/", "operator", PASSWORD)[0])

    time.sleep(1.2)  # real time: Redis expires keys by its own clock

    assert logged_in(log_in("/login/", "operator", PASSWORD)[0])


def test_login__limit_zero__never_locked(settings: SettingsWrapper, operator: User) -> None:
    settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ACCOUNT = 0
    for _ in range(10):
        log_in("/login/", "operator", "wrong")

    assert logged_in(log_in("/login/", "operator", PASSWORD)[0])


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "192.0.2.1", "10.0.0.2"),
        (1, "192.0.2.1", "192.0.2.1"),
        (1, "6.6.6.6, 192.0.2.1", "192.0.2.1"),
        (2, "6.6.6.6, 192.0.2.1, 10.0.0.9", "192.0.2.1"),
        (2, "192.0.2.1", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
    ids=["no-proxy", "one-hop", "forged-left-entry-ignored", "two-hops", "header-too-short", "no-header"],
)
def test_client_address__trusted_hops__reads_forwarded_for_from_the_right(
    settings: SettingsWrapper, hops: int, forwarded: str, expected: str
) -> None:
    settings.FLAGSTAFF_TRUSTED_PROXY_HOPS = hops
    request = RequestFactory().get("/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    assert login_throttle.client_address(request) == expected


def test_login__behind_a_proxy__address_lockout_is_per_forwarded_client(
    operator: User, settings: SettingsWrapper
) -> None:
    settings.FLAGSTAFF_TRUSTED_PROXY_HOPS = 1
    settings.FLAGSTAFF_LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    proxy = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.50")
    for name in ("a", "b", "c"):
        proxy.post("/login/", {"username": name, "password": "wrong"})

    other = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.51")
    response = other.post("/login/", {"username": "operator", "password": PASSWORD})

    assert response.status_code == 302
