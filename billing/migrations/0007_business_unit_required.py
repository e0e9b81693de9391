"""Every customer, job, invoice and payment now has a unit (0006 assigned the default one): make it required.

Its own migration because PostgreSQL refuses to alter a table in the transaction that just updated its rows under a
deferred foreign key ("pending trigger events")."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_business_units"),
    ]

    operations = [
        migrations.AlterField(
            model_name=model_name,
            name="business_unit",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name=related_name, to="billing.businessunit"
            ),
        )
        for model_name, related_name in (
            ("customer", "customers"),
            ("job", "jobs"),
            ("invoice", "invoices"),
            ("payment", "payments"),
        )
    ]
