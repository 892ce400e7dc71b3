"""The sum of squared per-call costs on every rollup, for the variance of the cost per call.

Rows written before this migration get their sum from the raw calls they count, when every call
with a known cost is still stored (retention may have deleted some); otherwise the sum is
unknown (null), and stays unknown: the analysis refuses a cost comparison over such a row.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# Each raw call's rollup key, as telemetry/services/ingest.py rolls it up: an unattributed call
# counts under no flag, version or arm, whatever part of its token resolved.
_CALL_KEYS = """
    COALESCE(environment_id, 0) AS environment_key,
    CASE WHEN attributed THEN COALESCE(flag_id, 0) ELSE 0 END AS flag_key,
    CASE WHEN attributed THEN COALESCE(version, 0) ELSE 0 END AS version_key,
    CASE WHEN attributed THEN arm ELSE '' END AS arm_key,
    model,
    COUNT(cost_micro_usd) AS known,
    COALESCE(SUM({square}), 0) AS squares
"""
_MATCH = """
    calls.bucket = telemetry_rollup.bucket
    AND calls.environment_key = COALESCE(telemetry_rollup.environment_id, 0)
    AND calls.flag_key = COALESCE(telemetry_rollup.flag_id, 0)
    AND calls.version_key = COALESCE(telemetry_rollup.version, 0)
    AND calls.arm_key = telemetry_rollup.arm
    AND calls.model = telemetry_rollup.model
    AND calls.known = telemetry_rollup.calls - telemetry_rollup.cost_unknown_calls
"""
_BUCKET = {
    "postgresql": "date_trunc('minute', timestamp)",
    "sqlite": "strftime('%Y-%m-%d %H:%M:00', timestamp)",
}
_SQUARE = {
    "postgresql": "cost_micro_usd::numeric * cost_micro_usd",
    "sqlite": "cost_micro_usd * cost_micro_usd",
}


def backfill(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in _BUCKET:
        raise NotImplementedError(f"no backfill for {vendor}")
    calls = (
        f"SELECT {_BUCKET[vendor]} AS bucket, {_CALL_KEYS.format(square=_SQUARE[vendor])} "  # noqa: S608
        "FROM telemetry_callrecord GROUP BY 1, 2, 3, 4, 5, 6"
    )
    with schema_editor.connection.cursor() as cursor:
        # Unknown first, then known wherever the raw calls are all still there.
        cursor.execute(
            "UPDATE telemetry_rollup SET cost_sq_micro_usd2 = NULL WHERE calls > cost_unknown_calls"
        )
        cursor.execute(
            f"UPDATE telemetry_rollup SET cost_sq_micro_usd2 = calls.squares FROM ({calls}) AS calls "  # noqa: S608
            f"WHERE {_MATCH}"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0004_incident_kind_rollout_rolled_back"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollup",
            name="cost_sq_micro_usd2",
            field=models.DecimalField(
                decimal_places=0,
                default=0,
                help_text="Sum of squared per-call costs (micro-USD²) of the calls with a known cost; "
                "null: unknown",
                max_digits=38,
                null=True,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
