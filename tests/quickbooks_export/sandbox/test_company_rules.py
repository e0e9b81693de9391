"""Rules that depend on the kind of company: transaction numbers, item types, inactive objects, currency, and the
test helpers that change QuickBooks "by hand" (docs/quickbooks_sales_tax.md)."""

from decimal import Decimal

import pytest
import requests
from quickbooks.exceptions import ObjectNotFoundException, QuickbooksException, ValidationException
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment
from quickbooks.objects.preferences import Preferences

from .clients import (
    SERVICES_INCOME_ACCOUNT_ID,
    connect_company,
    invoice_object,
    make_customer,
    make_invoice,
    make_item,
    payment_object,
    ref,
)


@pytest.fixture
def manual(qbo_sandbox):
    """A us-manual-tax company: custom transaction numbers off."""
    return connect_company(qbo_sandbox, "us-manual-tax")


# --- Custom transaction numbers ---


def test_numbers_off_quickbooks_numbers_invoices_in_sequence(manual):
    customer, item = make_customer(manual.qb, "Seq Co"), make_item(manual.qb)

    first = make_invoice(manual.qb, customer, item, "10")
    second = make_invoice(manual.qb, customer, item, "10")

    assert (first.DocNumber, second.DocNumber) == ("1001", "1002")


def test_numbers_off_a_sent_number_is_kept_and_duplicates_are_not_refused(manual):
    # Intuit (Invoice reference): with CustomTxnNumbers false "do not send a value as it can lead to unwanted
    # duplicates": the value is kept, not checked.
    customer, item = make_customer(manual.qb, "Dup Off Co"), make_item(manual.qb)

    first = make_invoice(manual.qb, customer, item, "10", doc_number="INV-1041")
    second = make_invoice(manual.qb, customer, item, "20", doc_number="INV-1041")

    assert (first.DocNumber, second.DocNumber) == ("INV-1041", "INV-1041")
    assert len(Invoice.where("DocNumber = 'INV-1041'", qb=manual.qb)) == 2


def test_auto_generate_asks_for_the_next_number_even_with_custom_numbers_on(qbo):
    customer, item = make_customer(qbo.qb, "Auto Co"), make_item(qbo.qb)

    invoice = make_invoice(qbo.qb, customer, item, "10", doc_number="AUTO_GENERATE")

    assert invoice.DocNumber == "1001"


def test_flipping_the_preference_by_hand_changes_the_numbering(qbo):
    customer, item = make_customer(qbo.qb, "Flip Co"), make_item(qbo.qb)
    make_invoice(qbo.qb, customer, item, "10", doc_number="INV-1")

    qbo.server.edit_entity(qbo.realm_id, "Preferences", "1", {"SalesFormsPrefs": {"CustomTxnNumbers": False}})

    prefs = Preferences.get(qb=qbo.qb)
    assert prefs.SalesFormsPrefs.CustomTxnNumbers is False
    raw = qbo.qb.query("select * from Preferences")["QueryResponse"]["Preferences"][0]
    assert raw["SalesFormsPrefs"]["ETransactionEnabledStatus"] == "NotApplicable"  # the rest of the group is kept
    assert make_invoice(qbo.qb, customer, item, "10").DocNumber == "1001"
    assert make_invoice(qbo.qb, customer, item, "10", doc_number="INV-1").DocNumber == "INV-1"


# --- Item types ---


def test_inventory_item_needs_its_accounts_and_start_date(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "us-ast", seed="collisions")
    item = Item()
    item.Name, item.Type = "Furnace", "Inventory"
    item.IncomeAccountRef = ref(SERVICES_INCOME_ACCOUNT_ID)

    with pytest.raises(ValidationException) as missing:
        item.save(qb=qbo.qb)
    item.ExpenseAccountRef, item.AssetAccountRef = ref("6"), ref("5")
    item.InvStartDate, item.QtyOnHand = "2026-10-01", Decimal("2")
    saved = item.save(qb=qbo.qb)

    assert missing.value.error_code == 2020
    assert (saved.Type, saved.TrackQtyOnHand, saved.QtyOnHand) == ("Inventory", True, Decimal("2"))


def test_category_is_an_item_without_accounts_that_cannot_be_sold(qbo):
    category = Item()
    category.Name, category.Type = "HVAC", "Category"
    category = category.save(qb=qbo.qb)
    customer = make_customer(qbo.qb, "Category Co")

    with pytest.raises(QuickbooksException) as error:
        make_invoice(qbo.qb, customer, category, "10")

    assert category.Type == "Category" and category.IncomeAccountRef is None
    assert error.value.error_code == 6000 and "category" in error.value.detail


def test_group_items_are_not_modelled(qbo):
    item = Item()
    item.Name, item.Type = "Bundle", "Group"

    with pytest.raises(ValidationException) as error:
        item.save(qb=qbo.qb)

    assert error.value.error_code == 2010


# --- Inactive objects ---


def test_queries_answer_active_objects_unless_the_where_names_active(qbo):
    kept, gone = make_item(qbo.qb, "Kept"), make_item(qbo.qb, "Gone")
    qbo.server.deactivate(qbo.realm_id, "Item", gone.Id)

    default = [item.Name for item in Item.all(qb=qbo.qb)]
    both = [item.Name for item in Item.where("Active IN (true, false)", qb=qbo.qb)]
    inactive = [item.Name for item in Item.where("Active = false", qb=qbo.qb)]
    by_name = Item.where("Name = 'Gone'", qb=qbo.qb)

    assert (default, both, inactive, by_name) == (["Kept"], ["Kept", "Gone"], ["Gone"], [])
    assert Item.get(gone.Id, qb=qbo.qb).Active is False  # a read by Id still answers
    assert kept.Active is True


def test_an_inactive_name_is_still_taken_6240(qbo):
    customer = make_customer(qbo.qb, "Dormant Co")
    qbo.server.deactivate(qbo.realm_id, "Customer", customer.Id)

    with pytest.raises(QuickbooksException) as error:
        make_customer(qbo.qb, "Dormant Co")

    assert error.value.error_code == 6240
    assert Customer.filter(DisplayName="Dormant Co", qb=qbo.qb) == []


def test_an_inactive_item_on_an_invoice_is_610_made_inactive(qbo):
    customer, item = make_customer(qbo.qb, "Uses Inactive Co"), make_item(qbo.qb, "Retired")
    qbo.server.deactivate(qbo.realm_id, "Item", item.Id)

    with pytest.raises(ObjectNotFoundException) as error:
        make_invoice(qbo.qb, customer, item, "10")

    assert error.value.error_code == 610
    assert "made inactive" in error.value.detail


def test_an_inactive_customer_cannot_be_invoiced_or_paid_610(qbo):
    customer, item = make_customer(qbo.qb, "Closed Co"), make_item(qbo.qb)
    invoice = make_invoice(qbo.qb, customer, item, "10")
    qbo.server.deactivate(qbo.realm_id, "Customer", customer.Id)

    with pytest.raises(ObjectNotFoundException) as on_invoice:
        make_invoice(qbo.qb, customer, item, "10")
    with pytest.raises(ObjectNotFoundException) as on_payment:
        payment_object(customer.Id, "10", {invoice.Id: "10"}).save(qb=qbo.qb)

    assert on_invoice.value.error_code == on_payment.value.error_code == 610


def test_reactivating_makes_it_usable_again(qbo):
    customer, item = make_customer(qbo.qb, "Back Co"), make_item(qbo.qb, "Back")
    qbo.server.deactivate(qbo.realm_id, "Item", item.Id)
    read = Item.get(item.Id, qb=qbo.qb)
    read.Active = True

    read.save(qb=qbo.qb)

    assert make_invoice(qbo.qb, customer, item, "10").TotalAmt == Decimal("10")


# --- Currency ---


def test_without_multicurrency_another_currency_is_refused_6000(qbo):
    customer = Customer()
    customer.DisplayName = "Euro Co"
    customer.CurrencyRef = ref("EUR")

    with pytest.raises(QuickbooksException) as error:
        customer.save(qb=qbo.qb)

    assert error.value.error_code == 6000 and "USD" in error.value.detail
    assert make_customer(qbo.qb, "Dollar Co").CurrencyRef.value == "USD"


def test_with_multicurrency_a_customer_keeps_its_currency_and_its_transactions_use_it(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "ca")
    customer = Customer()
    customer.DisplayName = "US Client"
    customer.CurrencyRef = ref("USD")
    customer = customer.save(qb=qbo.qb)
    item = make_item(qbo.qb)
    base = invoice_object(customer.Id, item.Id, "100.00")
    base.Line[0].SalesItemLineDetail.TaxCodeRef = ref("3")  # Zero-rated
    base.ExchangeRate = Decimal("1.35")
    invoice = base.save(qb=qbo.qb)
    payment = payment_object(customer.Id, "100.00", {invoice.Id: "100.00"}).save(qb=qbo.qb)
    customer.CurrencyRef = ref("CAD")

    with pytest.raises(QuickbooksException) as changed:
        customer.save(qb=qbo.qb)

    assert (invoice.CurrencyRef.value, payment.CurrencyRef.value) == ("USD", "USD")
    assert invoice.HomeTotalAmt == Decimal("135.00")
    assert changed.value.error_code == 6000
    assert Invoice.get(invoice.Id, qb=qbo.qb).Balance == Decimal("0")


def test_a_transaction_in_another_currency_than_its_customer_is_6000(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "ca")
    customer = make_customer(qbo.qb, "Local Client")
    payment = payment_object(customer.Id, "10")
    payment.CurrencyRef = ref("USD")

    with pytest.raises(QuickbooksException) as error:
        payment.save(qb=qbo.qb)

    assert customer.CurrencyRef.value == "CAD"
    assert error.value.error_code == 6000 and "CAD" in error.value.detail


# --- Hand changes ---


def test_delete_by_hand_leaves_a_not_found(qbo):
    customer, item = make_customer(qbo.qb, "Deleted Co"), make_item(qbo.qb)
    invoice = make_invoice(qbo.qb, customer, item, "10")

    qbo.server.delete_entity(qbo.realm_id, "Invoice", invoice.Id)

    with pytest.raises(ObjectNotFoundException):
        Invoice.get(invoice.Id, qb=qbo.qb)


def test_hand_changes_over_http(qbo):
    customer = make_customer(qbo.qb, "Http Hand Co")
    base = f"{qbo.server.base_url}/_sandbox/companies/{qbo.realm_id}/entities/Customer"

    changed = requests.post(f"{base}/{customer.Id}", json={"changes": {"Active": False}}, timeout=5)
    refused = requests.post(f"{base}/{customer.Id}", json={"delete": True}, timeout=5)
    missing = requests.post(f"{base}/999", json={"changes": {}}, timeout=5)

    assert changed.status_code == 200 and changed.json()["Active"] is False
    assert refused.status_code == 400 and refused.json()["Fault"]["Error"][0]["code"] == "500"
    assert missing.status_code == 404
    assert Customer.get(customer.Id, qb=qbo.qb).SyncToken == "1"


def test_a_payment_cannot_be_posted_against_an_edited_invoice_beyond_its_new_balance(qbo):
    customer, item = make_customer(qbo.qb, "Edited Co"), make_item(qbo.qb)
    invoice = make_invoice(qbo.qb, customer, item, "100.00")
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": "60.00",
        "SalesItemLineDetail": {"ItemRef": {"value": item.Id}},
    }
    qbo.server.edit_entity(qbo.realm_id, "Invoice", invoice.Id, {"Line": [line]})

    with pytest.raises(QuickbooksException) as error:
        payment_object(customer.Id, "100.00", {invoice.Id: "100.00"}).save(qb=qbo.qb)

    assert error.value.error_code == 6000
    assert Payment.all(qb=qbo.qb) == []
