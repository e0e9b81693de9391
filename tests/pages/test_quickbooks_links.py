"""The QuickBooks links page: every mapping, stale ones shown with the reason; unlink, link to a different record,
make active again — POST, CSRF, the manage permission, audited (who, when, before/after)."""

from decimal import Decimal

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import services as billing_services
from billing.models import Payment
from quickbooks_export.models import QuickBooksMapping, QuickBooksMappingAudit, QuickBooksRequest
from quickbooks_export.services import export_payment_retry
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import drain, export

from .conftest import OFFICE_PERMISSIONS, make_user

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
Kind = QuickBooksMapping.Kind


@pytest.fixture
def manager_client(client, db):
    user = make_user("mia", *OFFICE_PERMISSIONS, "manage_quickbooks_connection", first_name="Mia")
    client.force_login(user)
    return client


def test_a_customer_made_inactive_in_quickbooks_is_detected_once_shown_stale_and_reactivated(
    manager_client, qbo_company
):
    customer = CustomerFactory(display_name="Lakeview Property Management", email="ap@lakeview.example")
    export(pay(issued_invoice(customer=customer, amount="100.00"), "100.00"))
    mapping = QuickBooksMapping.objects.get(kind=Kind.CUSTOMER)
    qbo_company.server.edit_entity(qbo_company.realm_id, "Customer", mapping.qbo_id, {"Active": False})

    second = pay(issued_invoice(customer=customer, amount="200.00"), "200.00")
    export(second)

    second.refresh_from_db()
    assert second.export_status == S.FAILED
    mapping.refresh_from_db()
    assert "is inactive in QuickBooks" in mapping.stale_reason
    assert second.export_items.get().message.endswith("then retry.")
    # The next export fails at once with the reason: no new invoice is sent to QuickBooks.
    sent = QuickBooksRequest.objects.count()
    drain(export_payment_retry(payment_id=second.pk).realm_id)
    assert QuickBooksRequest.objects.count() == sent
    assert "is inactive in QuickBooks" in second.export_items.order_by("-id").first().message

    html = manager_client.get(reverse("exports:mappings") + "?stale=1").content.decode()
    assert "Stale" in html and "Lakeview Property Management" in html and "Make it active in QuickBooks" in html
    manager_client.post(reverse("exports:mapping_action", args=[mapping.pk, "reactivate"]))

    [qbo_customer] = [c for c in qbo_company.entities("Customer") if c["Id"] == mapping.qbo_id]
    assert qbo_customer["Active"] is True
    mapping.refresh_from_db()
    assert mapping.stale_reason == ""
    audit = QuickBooksMappingAudit.objects.get(action="reactivate")
    assert (
        audit.by.username == "mia" and "inactive" in audit.before["stale_reason"] and audit.after["stale_reason"] == ""
    )
    drain(export_payment_retry(payment_id=second.pk).realm_id)
    second.refresh_from_db()
    assert second.export_status == S.EXPORTED
    assert all(Decimal(str(inv["Balance"])) == 0 for inv in qbo_company.entities("Invoice"))


def test_unlink_and_relink_are_audited_and_an_inventory_item_is_refused(manager_client, qbo_company):
    customer = CustomerFactory()
    export(pay(issued_invoice(customer=customer, amount="100.00"), "100.00"))
    item = QuickBooksMapping.objects.get(kind=Kind.ITEM)
    customer_mapping = QuickBooksMapping.objects.get(kind=Kind.CUSTOMER)

    other = qbo_company.server.entities(qbo_company.realm_id, "Customer")  # only ours so far
    from quickbooks_export.client import QuickBooksClient

    client = QuickBooksClient.for_current_connection()
    new_customer = client.create("Customer", {"DisplayName": "The right party"}, request_id="hand-c1")
    inventory = [i for i in qbo_company.entities("Account") if i.get("AccountType") == "Income"][0]
    stock = client.create(
        "Item",
        {"Name": "Widget", "Type": "NonInventory", "IncomeAccountRef": {"value": inventory["Id"]}},
        request_id="hand-i1",
    )
    assert len(other) == 1

    url = reverse("exports:mapping_action", args=[customer_mapping.pk, "relink"])
    manager_client.post(url, {"qbo_id": new_customer["Id"], "note": "was the wrong party"})
    customer_mapping.refresh_from_db()
    assert (customer_mapping.qbo_id, customer_mapping.qbo_name) == (new_customer["Id"], "The right party")
    audit = QuickBooksMappingAudit.objects.get(action="relink")
    assert audit.before["qbo_id"] != audit.after["qbo_id"] and audit.note == "was the wrong party"

    response = manager_client.post(
        reverse("exports:mapping_action", args=[item.pk, "relink"]), {"qbo_id": "999999"}, follow=True
    )
    assert "QuickBooks has no item with Id 999999" in response.content.decode()
    manager_client.post(reverse("exports:mapping_action", args=[item.pk, "relink"]), {"qbo_id": stock["Id"]})
    item.refresh_from_db()
    assert item.qbo_id == stock["Id"]  # a Non-inventory item may sell a service

    manager_client.post(reverse("exports:mapping_action", args=[item.pk, "unlink"]))
    assert not QuickBooksMapping.objects.filter(pk=item.pk).exists()
    assert QuickBooksMappingAudit.objects.get(action="unlink").before["qbo_id"] == stock["Id"]


def test_a_payment_link_cannot_be_changed(manager_client, qbo_company):
    payment = pay(issued_invoice(amount="10.00"), "10.00")
    export(payment)
    mapping = QuickBooksMapping.objects.get(kind=Kind.PAYMENT)
    response = manager_client.post(reverse("exports:mapping_action", args=[mapping.pk, "unlink"]), follow=True)
    assert "A payment&#x27;s link cannot be changed" in response.content.decode()
    assert QuickBooksMapping.objects.filter(pk=mapping.pk).exists()


def test_without_the_manage_permission_the_page_is_read_only_and_posts_are_403(client, qbo_company):
    export(pay(issued_invoice(amount="10.00"), "10.00"))
    client.force_login(make_user("vic", *OFFICE_PERMISSIONS))
    html = client.get(reverse("exports:mappings")).content.decode()
    assert "Created by FieldSync" in html and "Unlink" not in html
    mapping = QuickBooksMapping.objects.get(kind=Kind.CUSTOMER)
    assert client.post(reverse("exports:mapping_action", args=[mapping.pk, "unlink"])).status_code == 403
    assert QuickBooksMapping.objects.filter(pk=mapping.pk).exists()


def test_the_page_makes_the_same_number_of_queries_for_few_and_many_links(manager_client):
    def add(n, start):
        for i in range(start, start + n):
            customer = CustomerFactory()
            invoice = billing_services.invoice_create(
                customer=customer, number=f"INV-Q{i}", lines=[billing_services.LineInput("Work", "1.00")]
            )
            for kind, key in ((Kind.CUSTOMER, customer.pk), (Kind.INVOICE, invoice.pk), (Kind.ITEM, f"work{i}")):
                QuickBooksMapping.objects.create(realm_id="1", kind=kind, local_key=str(key), qbo_id=f"{kind[0]}{i}")

    def count():
        with CaptureQueriesContext(db) as queries:
            assert manager_client.get(reverse("exports:mappings")).status_code == 200
        return len(queries)

    add(2, 0)
    few = count()
    add(14, 2)
    assert count() == few


def test_tax_code_choices_are_listed_too(manager_client):
    from quickbooks_export.models import QuickBooksTaxCodeMapping

    rate = billing_services.tax_rate_create(name="Chicago, IL", percentage="10.25")
    QuickBooksTaxCodeMapping.objects.create(
        realm_id="1", tax_rate=rate, qbo_tax_code_id="7", qbo_tax_code_name="Chicago City"
    )
    html = manager_client.get(reverse("exports:mappings")).content.decode()
    assert "Chicago, IL (10.25%)" in html and "Chicago City" in html
