"""Personas shared by the test suite; objects are built by the plain functions in tests/factories.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Model
from django.test import TransactionTestCase, override_settings
from drf_spectacular.generators import SchemaGenerator
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
    """Let the flush after a transactional test empty the tables on PostgreSQL quickly, the audit
    tables included.

    Django's flush uses one TRUNCATE of every table there, which creates new files for each table
    and index and takes seconds on a busy disk, after each of the suite's transactional tests; a
    DELETE of the few rows a test leaves takes milliseconds. The foreign keys Django creates are
    deferred to the commit, when every table is empty. The audit tables refuse DELETE and
    TRUNCATE (migrations 0002 and 0004): their triggers are lifted for the flush, in its
    transaction, and put back. A flush that resets sequences or cascades is left to Django.
    """
    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(
        self: DatabaseOperations,
        style: Any,
        tables: Any,
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if not tables:
            return []
        if reset_sequences or allow_cascade:
            statements = original(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        else:
            statements = [
                "SET CONSTRAINTS ALL DEFERRED",
                *(f"DELETE FROM {self.quote_name(table)}" for table in tables),  # noqa: S608
            ]
        guarded = [table for table in AUDIT_TABLES if table in tables]
        return [
            *(f"ALTER TABLE {table} DISABLE TRIGGER USER" for table in guarded),
            *statements,
            *(f"ALTER TABLE {table} ENABLE TRIGGER USER" for table in guarded),
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


class _PostMigrateRows:
    """The rows `post_migrate` leaves in an emptied database (content types, permissions, the
    model catalog), read once and written back by one INSERT per table after every later flush.

    A transactional test ends with a flush of every table, and Django's flush then emits
    `post_migrate`, whose handlers re-create those rows with a few hundred queries and a commit
    per app (about half a second a test). The first flush of a run is Django's own, signal
    included; the rows it leaves are kept, and each later flush empties the tables the same way
    but writes back those rows instead of emitting the signal. The database ends each test as it
    did before, with the rows' first ids kept.
    """

    def __init__(self) -> None:
        self.rows: dict[str, list[Model]] | None = None

    def flush(self, database: str) -> None:
        if self.rows is None:
            call_command("flush", verbosity=0, interactive=False, database=database, reset_sequences=False)
            self.rows = {
                model._meta.label: list(model._base_manager.using(database).order_by("pk"))
                for model in apps.get_models(include_auto_created=True)
                if model._meta.managed
                and not model._meta.proxy
                and model._base_manager.using(database).exists()
            }
            return
        call_command(
            "flush",
            verbosity=0,
            interactive=False,
            database=database,
            reset_sequences=False,  # as Django's; the restored rows keep their ids below each sequence
            inhibit_post_migrate=True,
        )
        with transaction.atomic(using=database):
            for label, rows in self.rows.items():
                apps.get_model(label)._base_manager.using(database).bulk_create(rows)
        ContentType.objects.clear_cache()


@pytest.fixture(autouse=True, scope="session")
def _flush_keeps_post_migrate_rows() -> Iterator[None]:
    """Every transactional test's flush restores the post-migrate rows by INSERT (`_PostMigrateRows`)
    rather than by the `post_migrate` signal. Tests that limit `available_apps` or roll back
    serialized data keep Django's own flush, which does not emit the signal for them."""
    saved: dict[str, _PostMigrateRows] = {}
    # Django's private hook for the flush (TransactionTestCase._fixture_teardown), untyped in
    # django-stubs.
    original = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]

    def _fixture_teardown(self: Any) -> None:
        if self.available_apps is not None or self.serialized_rollback:
            original(self)
            return
        for database in self._databases_names(include_mirrors=False):
            saved.setdefault(database, _PostMigrateRows()).flush(database)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", _fixture_teardown)
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """On PostgreSQL, commit without waiting for the WAL to reach the disk, in every session on the
    test database (this process's, the live server's and the Celery workers' the tests start).

    A commit then costs no fsync, which the transactional tests, the flush after each of them and
    the workers pay thousands of times a run. Only durability across a crash of PostgreSQL itself
    is given up, for a database dropped at the end of the run: atomicity, isolation and locking,
    which the tests are about, are untouched (PostgreSQL manual, "Asynchronous Commit").
    """
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        cursor.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
        cursor.execute("SET synchronous_commit = off")


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


@pytest.fixture(scope="session")
def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document as drf-spectacular generates it, generated once for the run (it
    depends only on the code); tests read it and never change it."""
    document: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return document


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
