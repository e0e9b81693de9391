"""Business units: each customer, job, invoice and payment belongs to one. Existing rows go into the default unit,
"Main" (rename it on the admin page); 0007 then makes the unit required."""

import django.db.models.deletion
from django.db import migrations, models

DEFAULT_UNIT = {"name": "Main", "slug": "main"}


def assign_default_unit(apps, schema_editor):
    BusinessUnit = apps.get_model("billing", "BusinessUnit")
    unit, _ = BusinessUnit.objects.get_or_create(slug=DEFAULT_UNIT["slug"], defaults={"name": DEFAULT_UNIT["name"]})
    for name in ("Customer", "Job", "Invoice", "Payment"):
        apps.get_model("billing", name).objects.filter(business_unit__isnull=True).update(business_unit=unit)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_payment_origin"),
    ]

    operations = [
        migrations.CreateModel(
            name="BusinessUnit",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("slug", models.SlugField(max_length=100, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["name", "id"]},
        ),
        *(
            migrations.AddField(
                model_name=model_name,
                name="business_unit",
                field=models.ForeignKey(
                    null=True,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name=related_name,
                    to="billing.businessunit",
                ),
            )
            for model_name, related_name in (
                ("customer", "customers"),
                ("job", "jobs"),
                ("invoice", "invoices"),
                ("payment", "payments"),
            )
        ),
        migrations.RunPython(assign_default_unit, migrations.RunPython.noop),
    ]
