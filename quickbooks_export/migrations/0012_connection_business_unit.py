"""Each business unit has its own QuickBooks connection: existing connections belong to the default unit ("Main",
made by billing 0006); 0013 makes the unit required and keeps one current connection per unit."""

import django.db.models.deletion
from django.db import migrations, models


def assign_default_unit(apps, schema_editor):
    BusinessUnit = apps.get_model("billing", "BusinessUnit")
    QuickBooksConnection = apps.get_model("quickbooks_export", "QuickBooksConnection")
    if not QuickBooksConnection.objects.exists():
        return
    unit, _ = BusinessUnit.objects.get_or_create(slug="main", defaults={"name": "Main"})
    QuickBooksConnection.objects.filter(business_unit__isnull=True).update(business_unit=unit)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_business_unit_required"),
        ("quickbooks_export", "0011_payments_recorded_in_quickbooks"),
    ]

    operations = [
        migrations.AddField(
            model_name="quickbooksconnection",
            name="business_unit",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="quickbooks_connections",
                to="billing.businessunit",
            ),
        ),
        migrations.RunPython(assign_default_unit, migrations.RunPython.noop),
    ]
