"""The database itself applies the ``on_delete`` of the usage tables' foreign keys, on
PostgreSQL.

Django emulates ``SET_NULL`` and ``CASCADE``: it updates or deletes the referencing rows,
then deletes the row. The gateway writes usage rows all the while, and a row committed
between those two statements fails the deletion on the foreign key (a 500 for whoever
deleted the client key, credential, model, rule, provider or organization). With the
action in the constraint, the DELETE itself clears or removes every row committed
before it; a row committed after it fails its own check, and the gateway's writer
writes it again without the reference. SQLite runs one writer at a time, so the window
does not exist there.

The constraints are re-added ``NOT VALID`` and validated separately (outside a
transaction), so the large metric table is scanned without blocking its writers.
"""

from django.db import migrations

# table -> {column: action}
ACTIONS = {
    "model_metrics": {
        "organization_id": "CASCADE",
        "client_key_id": "SET NULL",
        "credential_id": "SET NULL",
        "provider_id": "SET NULL",
        "model_id": "SET NULL",
        "routing_rule_id": "SET NULL",
    },
    "metric_daily": {"organization_id": "CASCADE"},
    "metric_daily_latency": {"organization_id": "CASCADE"},
}

FOREIGN_KEYS = """
    SELECT con.conname, ref.relname, refatt.attname
    FROM pg_constraint con
    JOIN pg_class ref ON ref.oid = con.confrelid
    JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
    JOIN pg_attribute refatt ON refatt.attrelid = con.confrelid AND refatt.attnum = con.confkey[1]
    WHERE con.conrelid = %s::regclass AND con.contype = 'f' AND att.attname = %s
"""


def _set_actions(schema_editor, action_of):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for table, columns in ACTIONS.items():
        for column, action in columns.items():
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(FOREIGN_KEYS, [table, column])
                constraints = cursor.fetchall()
            for name, target, target_column in constraints:
                schema_editor.execute(
                    f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}, "
                    f"ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(column)}) "
                    f"REFERENCES {quote(target)} ({quote(target_column)}) "
                    f"ON DELETE {action_of(action)} DEFERRABLE INITIALLY DEFERRED NOT VALID"
                )
                schema_editor.execute(
                    f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {quote(name)}"
                )


def forwards(apps, schema_editor):
    _set_actions(schema_editor, lambda action: action)


def backwards(apps, schema_editor):
    _set_actions(schema_editor, lambda action: "NO ACTION")


class Migration(migrations.Migration):
    # Each ALTER stands alone: no long transaction holding the tables locked.
    atomic = False

    dependencies = [("modelhub", "0006_field_help_text")]

    operations = [migrations.RunPython(forwards, backwards)]
