"""The metric table loses its foreign key constraints; the gateway's writer checks a
batch's references itself and, on PostgreSQL, triggers on the referenced tables apply
``on_delete`` to the rows already written.

The constraints cost most of the database's work for each request the gateway
records: six checks for every row, run at commit. The writer now looks the references
of a whole batch up in one statement, in the transaction that writes it, and locks the
rows it finds ``FOR KEY SHARE`` (``services.metrics_check_references``): a
deletion of one of them waits until the rows naming it are committed.

What the constraints' actions did (migration 0007) the triggers below do, once per
DELETE statement on the referenced table: delete the rows of a deleted organization,
and clear a reference to a deleted client key, credential, provider, model or rule.
They run after the DELETE, and see the rows committed while it waited. Django still
applies ``on_delete`` itself before deleting; on SQLite, which runs one writer at a
time, that is all there is.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

# referenced table -> (metric column, action)
ACTIONS = {
    "Organization": ("organization_id", "CASCADE"),
    "ClientKey": ("client_key_id", "SET NULL"),
    "ProviderCredential": ("credential_id", "SET NULL"),
    "Provider": ("provider_id", "SET NULL"),
    "Model": ("model_id", "SET NULL"),
    "RoutingRule": ("routing_rule_id", "SET NULL"),
}

FUNCTION = """
CREATE FUNCTION model_metrics_forget_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_ARGV[1] = 'CASCADE' THEN
        EXECUTE format(
            'DELETE FROM model_metrics WHERE %I IN (SELECT id FROM deleted)', TG_ARGV[0]
        );
    ELSE
        EXECUTE format(
            'UPDATE model_metrics SET %1$I = NULL WHERE %1$I IN (SELECT id FROM deleted)',
            TG_ARGV[0]
        );
    END IF;
    RETURN NULL;
END
$$
"""


def _trigger_name(column):
    return f"model_metrics_{column}_deleted"


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    schema_editor.execute(FUNCTION, params=None)  # its % are format()'s, not parameters
    for model_name, (column, action) in ACTIONS.items():
        table = apps.get_model("modelhub", model_name)._meta.db_table
        schema_editor.execute(
            f"CREATE TRIGGER {quote(_trigger_name(column))} AFTER DELETE ON {quote(table)} "
            f"REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT "
            f"EXECUTE FUNCTION model_metrics_forget_deleted('{column}', '{action}')"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for model_name, (column, _action) in ACTIONS.items():
        table = apps.get_model("modelhub", model_name)._meta.db_table
        schema_editor.execute(f"DROP TRIGGER {quote(_trigger_name(column))} ON {quote(table)}")
    schema_editor.execute("DROP FUNCTION model_metrics_forget_deleted()")


def restore_constraint_actions(apps, schema_editor):
    # Undoing this migration re-adds the constraints without actions; put 0007's back.
    importlib.import_module("modelhub.migrations.0007_metric_foreign_key_actions").forwards(
        apps, schema_editor
    )


class Migration(migrations.Migration):
    dependencies = [
        ("modelhub", "0012_metric_organization_index"),
    ]

    operations = [
        # First, so that undoing runs it last, once the constraints exist again.
        migrations.RunPython(migrations.RunPython.noop, restore_constraint_actions),
        migrations.RunPython(create_triggers, drop_triggers),
        migrations.AlterField(
            model_name="modelmetric",
            name="client_key",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="The client key that made the request (its id).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="modelhub.clientkey",
            ),
        ),
        migrations.AlterField(
            model_name="modelmetric",
            name="credential",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="The provider credential used (its id).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="modelhub.providercredential",
            ),
        ),
        migrations.AlterField(
            model_name="modelmetric",
            name="model",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="The model that served (its id).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="modelhub.model",
            ),
        ),
        migrations.AlterField(
            model_name="modelmetric",
            name="organization",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="modelhub.organization",
            ),
        ),
        migrations.AlterField(
            model_name="modelmetric",
            name="provider",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="The provider that served (its id).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="modelhub.provider",
            ),
        ),
        migrations.AlterField(
            model_name="modelmetric",
            name="routing_rule",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="The routing rule that planned the request (its id).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="modelhub.routingrule",
            ),
        ),
    ]
