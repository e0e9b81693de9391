"""The API throttle's counters (fieldsync.ApiRateCount) in an UNLOGGED table on PostgreSQL.

Each API request bumps its budget's row in autocommit; in a logged table that commit waits for a WAL flush (an
fsync: 3-6 ms on the development machine, the largest single cost of a request). An unlogged table writes no WAL,
so the bump commits without waiting for the disk, and synchronous_commit stays on for everything else. The price:
after a crash of PostgreSQL (not a clean restart) the table is emptied, and standbys do not have it, so every client
starts a fresh window at most once after a crash or a failover, which is what the Redis cache does too. SQLite has
no such tables: nothing changes there.
"""

from django.db import migrations

TABLE = "fieldsync_apiratecount"


def unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} SET UNLOGGED")


def logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("fieldsync", "0006_api_rate_count")]

    operations = [migrations.RunPython(unlogged, logged, elidable=False)]
