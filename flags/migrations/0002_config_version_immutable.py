"""Config versions are immutable: on PostgreSQL a trigger rejects any UPDATE of a version row."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION flagstaff_config_version_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'config versions are immutable; create a new version instead';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER config_version_immutable
    BEFORE UPDATE ON flags_configversion
    FOR EACH ROW EXECUTE FUNCTION flagstaff_config_version_immutable();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS config_version_immutable ON flags_configversion;
DROP FUNCTION IF EXISTS flagstaff_config_version_immutable();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("flags", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
