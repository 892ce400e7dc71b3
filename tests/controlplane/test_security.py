"""Hardening headers and cookies: the Content-Security-Policy on pages and API answers, HSTS
with SECURE_COOKIES, the session age and the CSRF cookie's attributes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import client_for

pytestmark = pytest.mark.django_db

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def settings_under(**environ: str) -> dict[str, object]:
    """The security settings a fresh process reads from these environment variables."""
    names = ["SECURE_HSTS_SECONDS", "SESSION_COOKIE_AGE", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings", **environ}
    for name in ("SECURE_COOKIES", "SESSION_AGE_SECONDS", "SECURE_HSTS_SECONDS"):
        if name not in environ:
            env.pop(name, None)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    loaded: dict[str, object] = json.loads(run.stdout)
    return loaded


def test_login_page__any_request__no_inline_content_allowed() -> None:
    response = Client().get("/login/")

    assert response["Content-Security-Policy"] == POLICY
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_api__any_answer__carries_the_policy_too(editor: User) -> None:
    assert client_for(editor).get("/api/v1/flags/")["Content-Security-Policy"] == POLICY


def test_settings__secure_cookies__hsts_for_a_year_and_secure_cookies() -> None:
    loaded = settings_under(SECURE_COOKIES="true")

    assert loaded["SECURE_HSTS_SECONDS"] == 365 * 24 * 60 * 60
    assert (loaded["SESSION_COOKIE_SECURE"], loaded["CSRF_COOKIE_SECURE"]) == (True, True)


def test_settings__defaults__no_hsts_and_twelve_hour_sessions() -> None:
    loaded = settings_under()

    assert (loaded["SECURE_HSTS_SECONDS"], loaded["SESSION_COOKIE_AGE"]) == (0, 12 * 60 * 60)


def test_settings__session_age_seconds__is_the_session_cookie_age() -> None:
    assert settings_under(SESSION_AGE_SECONDS="3600")["SESSION_COOKIE_AGE"] == 3600


def test_https_response__secure_cookies_on__hsts_header(settings) -> None:
    settings.SECURE_HSTS_SECONDS = 31_536_000

    response = Client().get("/login/", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000"


def test_login_page__csrf_cookie__httponly_and_samesite_lax() -> None:
    response = Client().get("/login/")

    cookie = response.cookies[settings.CSRF_COOKIE_NAME]
    assert (cookie["httponly"], cookie["samesite"]) == (True, "Lax")


def test_login__session_cookie__lives_twelve_hours(django_user_model) -> None:
    django_user_model.objects.create_user(username="someone", password="a long password")
    client = Client()

    client.post("/login/", {"username": "someone", "password": "a long password"})

    assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 12 * 60 * 60
