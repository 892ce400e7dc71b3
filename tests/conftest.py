"""Personas shared by the test suite; objects are built by the plain functions in tests/factories.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from controlplane.models import Role
from controlplane.services import IssuedToken
from flags.serving.rate_limit import forget_leases
from flags.snapshots import reset_store
from tests.factories import client_for, make_token, make_user

pytest_plugins = ["tests.fakes.pytest_plugin"]


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """PBKDF2 at production strength costs ~0.3 s a hash; tests only need hashing to work."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


AUDIT_TABLES = ("controlplane_auditentry", "controlplane_auditcheckpoint")


@pytest.fixture(autouse=True, scope="session")
def _flush_past_the_audit_triggers() -> Iterator[None]:
    """Let the flush after a transactional test empty the audit tables on PostgreSQL.

    Django's flush uses TRUNCATE there, which the audit tables refuse (migration 0004); the
    triggers are lifted for that one statement, in its transaction, and put back.
    """
    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self: DatabaseOperations, style: Any, tables: Any, **options: Any) -> list[str]:
        statements = original(self, style, tables, **options)
        guarded = [table for table in AUDIT_TABLES if table in tables]
        if not statements or not guarded:
            return statements
        return [
            *(f"ALTER TABLE {table} DISABLE TRIGGER USER" for table in guarded),
            *statements,
            *(f"ALTER TABLE {table} ENABLE TRIGGER USER" for table in guarded),
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(autouse=True)
def _fresh_serving_state() -> Iterator[None]:
    """No test is served a snapshot an earlier test compiled for an environment of the same key,
    nor spends a rate-limit lease an earlier test took for a token of the same id."""
    reset_store()
    forget_leases()
    yield
    reset_store()
    forget_leases()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """No test sees login failures or spent stream tickets an earlier test left in the cache
    (the in-process one, or the services pass's Redis database)."""
    cache.clear()


@pytest.fixture
def editor(db: None) -> User:
    """The flag owner: authors versions and publishes them."""
    return make_user(role=Role.EDITOR, username="editor")


@pytest.fixture
def approver(db: None) -> User:
    return make_user(role=Role.APPROVER, username="approver")


@pytest.fixture
def auditor(db: None) -> User:
    return make_user(role=Role.AUDITOR, username="auditor")


@pytest.fixture
def viewer(db: None) -> User:
    """A signed-in user without a role row, which makes them a Viewer."""
    return make_user(role=None, username="viewer")


@pytest.fixture
def admin(db: None) -> User:
    return make_user(role=Role.ADMIN, username="admin")


@pytest.fixture
def anonymous_client() -> APIClient:
    """The outsider without credentials."""
    return client_for(None)


@pytest.fixture
def outsider_token(db: None) -> IssuedToken:
    """The outsider with a credential: a token whose only scope is unrelated (telemetry)."""
    return make_token(scopes=["telemetry"], name="outsider")


@pytest.fixture
def service_token(db: None) -> IssuedToken:
    """An automation credential (a deploy pipeline) that reads and writes flags."""
    return make_token(scopes=["read", "write"], name="deploy-pipeline")
