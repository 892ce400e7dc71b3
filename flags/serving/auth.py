"""Authentication for the serving endpoints: tokens remembered for a few seconds (serving needs
no database while they are), stream tickets for SSE clients without headers, and the serving
permission (a scope; an environment-bound token only its environment)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import Error as DatabaseError
from django.http import HttpRequest
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from controlplane.auth import ApiTokenAuthentication, TokenPrincipal, request_scopes, secret_from_headers
from controlplane.errors import Unavailable
from controlplane.models import ApiToken, Scope
from controlplane.tokens import hash_secret

STREAM_TICKET_SALT = "flagstaff.stream-ticket"


@dataclass(frozen=True, slots=True)
class _KnownToken:
    token: ApiToken
    checked_at: float


_known_tokens: dict[str, _KnownToken] = {}


def remembered_token(request: HttpRequest) -> ApiToken | None:
    """The request's API token when this process checked it less than
    FLAGSTAFF_TOKEN_CACHE_SECONDS ago and it is active; None otherwise (the full
    authentication then decides, with its errors)."""
    try:
        secret = secret_from_headers(request)
    except exceptions.AuthenticationFailed:
        return None
    if secret is None:
        return None
    known = _known_tokens.get(hash_secret(secret))
    if known is None or time.monotonic() - known.checked_at >= settings.FLAGSTAFF_TOKEN_CACHE_SECONDS:
        return None
    return known.token if known.token.is_active else None


class CachedTokenAuthentication(ApiTokenAuthentication):
    """ApiTokenAuthentication that remembers a token for FLAGSTAFF_TOKEN_CACHE_SECONDS.

    A remembered token is used without a query; when the database cannot be reached, the last
    known state of the token is used for as long as the outage lasts.
    """

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, ApiToken] | None:
        secret = secret_from_headers(request)
        if secret is None:
            return None
        digest = hash_secret(secret)
        now = time.monotonic()
        known = _known_tokens.get(digest)
        if known is not None and now - known.checked_at < settings.FLAGSTAFF_TOKEN_CACHE_SECONDS:
            token = known.token
        else:
            try:
                authenticated = super().authenticate(request)
            except exceptions.AuthenticationFailed:
                _known_tokens.pop(digest, None)
                raise
            except DatabaseError:
                if known is None:
                    raise Unavailable("The token cannot be checked right now; try again shortly.") from None
                token = known.token
            else:
                assert authenticated is not None
                token = authenticated[1]
            # On an outage too: the database is tried again after the same delay, not on every call.
            _known_tokens[digest] = _KnownToken(token, now)
        if not token.is_active:
            raise exceptions.AuthenticationFailed("This API token has been revoked.")
        return TokenPrincipal(token), token


def stream_ticket(token: ApiToken, environment: str) -> str:
    """A signed credential for one environment's stream, to put in its URL: it opens one stream
    within FLAGSTAFF_STREAM_TICKET_SECONDS (a URL in a log or a history is spent or stale)."""
    return signing.dumps(
        {"t": token.pk, "e": environment, "n": secrets.token_urlsafe(12)}, salt=STREAM_TICKET_SALT
    )


def _redeem(nonce: str) -> bool:
    """Whether this is the ticket's first use. The cache is shared by every process (Redis), or
    is the one process's (embedded); the mark outlives the ticket's validity."""
    return cache.add(
        f"{STREAM_TICKET_SALT}:{nonce}", 1, timeout=settings.FLAGSTAFF_STREAM_TICKET_SECONDS + 60
    )


class StreamTicketAuthentication(BaseAuthentication):
    """`?ticket=` on the change stream: for SSE clients that cannot send headers (EventSource)."""

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, ApiToken] | None:
        ticket = request.query_params.get("ticket")
        if not ticket:
            return None
        environment = (request.parser_context or {}).get("kwargs", {}).get("env")
        token = None
        try:
            data = signing.loads(
                ticket, salt=STREAM_TICKET_SALT, max_age=settings.FLAGSTAFF_STREAM_TICKET_SECONDS
            )
            if data["e"] == environment and _redeem(str(data["n"])):
                token = ApiToken.objects.select_related("environment").filter(pk=data["t"]).first()
        except (signing.BadSignature, KeyError, TypeError):
            pass
        if token is None or not token.is_active:
            raise exceptions.AuthenticationFailed(
                "The stream ticket is invalid, expired or already used; evaluate the flags again"
                " for a new stream URL."
            )
        return TokenPrincipal(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="flagstaff"'


class ServingPermission(permissions.BasePermission):
    """The view's serving scope (any of `serving_scopes`); an env-bound token only its env."""

    message = "Your role or token does not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        allowed = tuple(getattr(view, "serving_scopes", (Scope.RESOLVE,)))
        if not set(allowed) & request_scopes(request):
            self.message = (
                f"This action needs the {' or '.join(repr(str(s)) for s in allowed)} scope, "
                "which your role or token does not have."
            )
            return False
        bound = bound_environment(request)
        environment = view.kwargs.get("env")
        if bound is not None and environment is not None and environment != bound:
            self.message = f"This token is bound to environment '{bound}'."
            return False
        return True


def bound_environment(request: Request) -> str | None:
    return token_environment(request.auth if isinstance(request.auth, ApiToken) else None)


def token_environment(token: ApiToken | None) -> str | None:
    """The key of the environment the token is bound to, if any."""
    if token is None or token.environment is None:
        return None
    return token.environment.key
