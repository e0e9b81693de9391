"""The database cache's table (settings.CACHES): API throttle counts shared by every web process.

`manage.py createcachetable` creates it; doing it here means `migrate` (make run, deployments) is the only step.
It creates only tables that do not exist yet, and does nothing for caches that are not database caches.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("fieldsync", "0002_purge_idempotency_keys_schedule")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
