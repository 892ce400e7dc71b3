"""Refuse TRUNCATE on the audit table in PostgreSQL.

Row triggers (0002) do not see TRUNCATE, which empties the table in one statement; a statement
trigger does. SQLite has no TRUNCATE. Django's `flush` empties tables with TRUNCATE on
PostgreSQL, so it now stops at the audit log: the test suite lifts the trigger around its own
flushes (tests/conftest.py).
"""

from django.db import migrations

PG_FORWARD = """
CREATE TRIGGER audit_entry_no_truncate
    BEFORE TRUNCATE ON controlplane_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION flagstaff_audit_append_only();
"""
PG_BACKWARD = "DROP TRIGGER IF EXISTS audit_entry_no_truncate ON controlplane_auditentry;"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("controlplane", "0003_audit_checkpoint")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
