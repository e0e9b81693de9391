"""The database cache's table (settings.CACHES "fieldsync_cache"): API throttle counts shared by every web process.

Created here so that `migrate` (make run, deployments) is the only step, whatever CACHES says at migrate time (the
test settings use a local-memory cache; a deployment may switch back to the database cache later). Django's own
createcachetable code makes it, and does nothing when the table exists.
"""

from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

TABLE = "fieldsync_cache"


def create_cache_table(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, TABLE, dry_run=False)


def drop_cache_table(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("fieldsync", "0002_purge_idempotency_keys_schedule")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
