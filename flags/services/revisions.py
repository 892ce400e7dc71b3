"""Environment revisions: the one place they are bumped, and announced after commit."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.db import transaction
from django.db.models import F

from flags.models import Environment
from flags.snapshots import announce_revisions


def bump_revisions(environment_ids: Iterable[int]) -> None:
    """Bump the revisions; after commit, announce them so every process drops its snapshot."""
    ids = sorted(set(environment_ids))
    if ids:
        Environment.objects.filter(pk__in=ids).update(revision=F("revision") + 1)
        bumped = list(Environment.objects.filter(pk__in=ids).values_list("key", "revision"))
        transaction.on_commit(partial(announce_revisions, bumped))
