"""The lookup every autopilot view uses: a migration by its id, or a 404 with a stable code."""

from __future__ import annotations

from autopilot.models import Migration
from controlplane.errors import NotFound


def get_migration(pk: int) -> Migration:
    migration = Migration.objects.for_page().filter(pk=pk).first()
    if migration is None:
        raise NotFound(f"No migration {pk}.")
    return migration
