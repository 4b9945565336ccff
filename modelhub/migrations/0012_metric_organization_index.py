"""The metric table's index on the organization alone goes: each of the table's other
indexes starts with the organization and serves the same lookups, and the gateway wrote
every row through this one too.

Only the index is dropped. ``AlterField`` would also drop the foreign key and add it
back without the ``ON DELETE`` action that 0007 gave it. On PostgreSQL the index is
dropped ``CONCURRENTLY``, so the gateway's writers never wait for this migration.
"""

import django.db.models.deletion
from django.db import migrations, models

# The name Django gave the column's index (the same on every backend).
INDEX = "model_metrics_organization_id_e9414922"


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_index(apps, schema_editor):
    index = schema_editor.quote_name(INDEX)
    schema_editor.execute(f"DROP INDEX{_concurrently(schema_editor)} IF EXISTS {index}")


def create_index(apps, schema_editor):
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS {quote(INDEX)} "
        f"ON {quote('model_metrics')} ({quote('organization_id')})"
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("modelhub", "0011_request_log"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="modelmetric",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="modelhub.organization",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, create_index)],
        ),
    ]
