"""Write access, as every page of the flags app checks it."""

from __future__ import annotations

from django.http import HttpRequest

from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import require_scope
from flags.lookups import get_flag
from flags.models import Flag


def can_write(request: HttpRequest, flag: Flag | None = None) -> bool:
    return Scope.WRITE in scopes_for_user(request.user) and not (flag and flag.is_archived)


def writable_flag(request: HttpRequest, key: str) -> Flag:
    require_scope(request, Scope.WRITE)
    return get_flag(key)
