"""Idempotency keys are kept at least 24 hours; the worker removes older ones once a day."""

from django.db import migrations

NAME = "purge-idempotency-keys"


def add_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "django.core.management.call_command",
            "args": "'purge_idempotency_keys'",
            "schedule_type": "D",  # Schedule.DAILY
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fieldsync", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
