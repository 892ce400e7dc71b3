"""Existing production environments become protected, as new ones are from now on.

No audit entry is written: a migration is not an actor, and the environment's page shows the
setting; turning it off later is audited with its reason.
"""

from typing import Any

from django.db import migrations


def protect_production(apps: Any, schema_editor: Any) -> None:
    apps.get_model("flags", "Environment").objects.filter(key="production").update(protected=True)


class Migration(migrations.Migration):
    dependencies = [("flags", "0005_environment_protected")]

    operations = [migrations.RunPython(protect_production, migrations.RunPython.noop)]
