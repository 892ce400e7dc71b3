"""Make the audit table append-only in the database itself.

PostgreSQL rejects UPDATE and DELETE with a trigger. SQLite rejects UPDATE; DELETE stays possible
there because Django's test flush empties tables with DELETE (on PostgreSQL it uses TRUNCATE,
which row triggers do not see). Tampering that gets past either is caught by verify_audit.
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION flagstaff_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on controlplane_auditentry is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_append_only
    BEFORE UPDATE OR DELETE ON controlplane_auditentry
    FOR EACH ROW EXECUTE FUNCTION flagstaff_audit_append_only();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON controlplane_auditentry;
DROP FUNCTION IF EXISTS flagstaff_audit_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON controlplane_auditentry
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS audit_entry_no_update;"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # No parameters: the function body's '%' is PL/pgSQL formatting, not a placeholder.
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("controlplane", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
