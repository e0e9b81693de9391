"""The Change Data Capture sweep every 15 minutes (cdc.py): what changed in QuickBooks, in case a webhook was lost."""

from django.db import migrations

SWEEP_NAME = "quickbooks-cdc-sweep"


def add_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SWEEP_NAME,
        defaults={
            "func": "quickbooks_export.tasks.cdc_sweep_task",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 15,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("quickbooks_export", "0006_keep_quickbooks_in_step")]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
