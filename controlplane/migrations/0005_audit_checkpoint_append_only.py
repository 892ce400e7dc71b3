"""Make audit checkpoints append-only in the database, as the audit entries are (0002, 0004).

PostgreSQL refuses UPDATE, DELETE and TRUNCATE; SQLite refuses UPDATE (DELETE stays possible
there for Django's test flush, as for the entries).
"""

from django.db import migrations

PG_FORWARD = """
CREATE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON controlplane_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION flagstaff_audit_append_only();
CREATE TRIGGER audit_checkpoint_no_truncate
    BEFORE TRUNCATE ON controlplane_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION flagstaff_audit_append_only();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON controlplane_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON controlplane_auditcheckpoint;
"""
SQLITE_FORWARD = """
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON controlplane_auditcheckpoint
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS audit_checkpoint_no_update;"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("controlplane", "0004_audit_no_truncate")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
