"""Trigram indexes for the catalog's substring searches, on PostgreSQL only.

``icontains`` becomes ``UPPER(column::text) LIKE UPPER('%word%')``, which a B-tree cannot
serve; a GIN index over the same expression with ``gin_trgm_ops`` can. Other databases
(SQLite in development) keep scanning, which is fine at their size.
"""

from django.db import migrations

COLUMNS = ("model_name", "provider_model_id", "author", "hugging_face_id")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS models_{column}_trgm ON models "
            f"USING gin (UPPER({column}::text) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS models_{column}_trgm")


class Migration(migrations.Migration):
    dependencies = [("modelhub", "0003_model_id_index")]

    operations = [migrations.RunPython(create, drop)]
