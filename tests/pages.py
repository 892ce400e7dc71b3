"""Helpers of the page (HTML) tests of every app: a logged-in client, the page's text, the
errors a form shows at a field, and the login redirect every page gives an anonymous visitor."""

import html
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse


def logged_in(user: User | None) -> Client:
    """A browser logged in as `user` (anonymous for None)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text(response: Any) -> str:
    """The page as the reader sees it: entities such as &#x27; unescaped."""
    return html.unescape(response.content.decode())


def field_errors(page: str, field: str) -> str:
    """The error list a form shows at its field `field` (Django's `id_<field>_error`), as HTML."""
    errors = page[page.index(f'id="id_{field}_error"') :]
    return errors[: errors.index("</ul>")]


def assert_login_redirect(response: Any) -> None:
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
