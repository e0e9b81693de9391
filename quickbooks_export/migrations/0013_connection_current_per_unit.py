"""One current QuickBooks connection per business unit (was: one for the installation), and a company current in
at most one unit. Its own migration: PostgreSQL refuses to alter a table in the transaction that updated it (0012)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("quickbooks_export", "0012_connection_business_unit"),
    ]

    operations = [
        migrations.AlterField(
            model_name="quickbooksconnection",
            name="business_unit",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="quickbooks_connections",
                to="billing.businessunit",
            ),
        ),
        migrations.RemoveConstraint(model_name="quickbooksconnection", name="qbo_connection_at_most_one_current"),
        migrations.AddConstraint(
            model_name="quickbooksconnection",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_current", True)),
                fields=("business_unit",),
                name="qbo_connection_one_current_per_unit",
            ),
        ),
        migrations.AddConstraint(
            model_name="quickbooksconnection",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_current", True)),
                fields=("realm_id",),
                name="qbo_connection_company_current_once",
            ),
        ),
    ]
