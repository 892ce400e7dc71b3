"""API authentication (hashed tokens) and the scope check every API view goes through."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from controlplane.audit import Actor
from controlplane.models import ApiToken, Scope, Source
from controlplane.roles import scopes_for_user
from controlplane.tokens import hash_secret

if TYPE_CHECKING:
    # Imported for types only: DRF imports this module while rest_framework.views loads.
    from rest_framework.views import APIView

LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenPrincipal:
    """The `request.user` of a token-authenticated request."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.pk = None

    def __str__(self) -> str:
        return f"token:{self.token.name}"


def secret_from_headers(request: HttpRequest | Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if scheme.lower() == "bearer":
            raise exceptions.AuthenticationFailed("The Authorization header has no token after 'Bearer'.")
        return None
    api_key = request.META.get("HTTP_X_API_KEY", "").strip()
    return api_key or None


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[TokenPrincipal, ApiToken] | None:
        secret = secret_from_headers(request)
        if secret is None:
            return None
        try:
            token = ApiToken.objects.select_related("environment").get(token_hash=hash_secret(secret))
        except ApiToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Unknown API token.") from None
        if not token.is_active:
            raise exceptions.AuthenticationFailed("This API token has been revoked.")
        now = timezone.now()
        stale = now - LAST_USED_RESOLUTION
        # At most one write a minute per token, whatever the request rate. The row just read
        # says whether one is due, so most requests of a busy token make no second round trip;
        # the update stays conditional for requests that race to it.
        if token.last_used_at is None or token.last_used_at < stale:
            ApiToken.objects.filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk
            ).update(last_used_at=now)
        return TokenPrincipal(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="flagstaff"'


def actor_for_request(request: Request) -> Actor:
    if isinstance(request.auth, ApiToken):
        return Actor.for_token(request.auth)
    return Actor.for_user(request.user, source=Source.API)


def request_scopes(request: Request) -> frozenset[str]:
    if isinstance(request.auth, ApiToken):
        return frozenset(request.auth.scopes)
    return scopes_for_user(request.user)


class HasScope(permissions.BasePermission):
    """Grant access when the caller holds the view's scope for this method.

    Views declare `required_scopes = {"GET": "audit"}`, naming every method they serve; a view
    without the table gets STANDARD_SCOPES, and HEAD and OPTIONS need GET's scope. A token bound
    to one environment may act only on views that name that environment in their URL
    (`environment_url_kwarg`), and may read the rest.
    """

    message = "Your role or token does not allow this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        required = declared_scope(view, request.method or "")
        if required is None:
            self.message = f"{request.method} is not an operation of this endpoint."
            return False
        if required not in request_scopes(request):
            self.message = (
                f"This action needs the '{required}' scope, which your role or token does not have."
            )
            return False
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is None or token.environment is None:
            return True
        bound_to = token.environment.key
        env_kwarg = getattr(view, "environment_url_kwarg", None)
        if env_kwarg and env_kwarg in view.kwargs:
            if view.kwargs[env_kwarg] != bound_to:
                self.message = f"This token is bound to environment '{bound_to}'."
                return False
            return True
        # A POST that needs only the read scope (a dry-run validation) changes nothing: it is a read.
        if request.method not in permissions.SAFE_METHODS and required != Scope.READ:
            self.message = (
                f"This token is bound to environment '{bound_to}' "
                "and cannot make changes that span environments."
            )
            return False
        return True


# The scopes of a view that declares none: reading needs `read`, every change needs `write`.
STANDARD_SCOPES: dict[str, str] = {
    "GET": Scope.READ,
    "POST": Scope.WRITE,
    "PUT": Scope.WRITE,
    "PATCH": Scope.WRITE,
    "DELETE": Scope.WRITE,
}
# HEAD runs the GET handler and OPTIONS describes the view: each reveals what GET does, so each
# needs GET's scope; a view without GET answers neither.
SCOPE_OF = {"HEAD": "GET", "OPTIONS": "GET"}


def declared_scope(view: Any, method: str) -> str | None:
    """The scope `method` needs on `view`, or None when the view declares none for it.

    A view's `required_scopes` is its whole table: a method missing from it is refused rather
    than given a default.
    """
    scopes: dict[str, str] = getattr(view, "required_scopes", STANDARD_SCOPES)
    return scopes.get(SCOPE_OF.get(method, method))
