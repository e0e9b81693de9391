"""API clients act on the records of their business units. Existing clients get the default unit ("Main", made by
billing 0006), so each keeps seeing what it saw when a second unit is added later."""

from django.db import migrations, models


def assign_default_unit(apps, schema_editor):
    ApiClient = apps.get_model("fieldsync", "ApiClient")
    BusinessUnit = apps.get_model("billing", "BusinessUnit")
    if not ApiClient.objects.exists():
        return
    unit, _ = BusinessUnit.objects.get_or_create(slug="main", defaults={"name": "Main"})
    Through = ApiClient.business_units.through
    Through.objects.bulk_create(
        [Through(apiclient_id=pk, businessunit_id=unit.pk) for pk in ApiClient.objects.values_list("pk", flat=True)],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_business_unit_members"),
        ("fieldsync", "0004_quickbooks_call_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="apiclient",
            name="business_units",
            field=models.ManyToManyField(blank=True, related_name="api_clients", to="billing.businessunit"),
        ),
        migrations.RunPython(assign_default_unit, migrations.RunPython.noop),
    ]
