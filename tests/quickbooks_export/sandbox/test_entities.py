"""Entities through python-quickbooks: seeding, create/read/update, optimistic locking and QBO's error codes."""

import json
from decimal import Decimal

import pytest
from quickbooks.exceptions import (
    ObjectNotFoundException,
    QuickbooksException,
    UnsupportedException,
    ValidationException,
)
from quickbooks.objects.account import Account
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment
from quickbooks.objects.paymentmethod import PaymentMethod

from .clients import invoice_object, make_customer, make_invoice, make_item, payment_object, ref


def _raw_post(qbo, entity: str, body: dict):
    """The answer python-quickbooks' own session gets, to look at status and JSON as sent."""
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/{entity}"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return qbo.qb.process_request("POST", url, headers=headers, params={"minorversion": 75}, data=json.dumps(body))


def test_new_company_is_seeded_with_company_info_accounts_and_payment_methods(qbo):
    info = CompanyInfo.get(qbo.realm_id, qb=qbo.qb)
    accounts = {account.Name: account.AccountType for account in Account.all(qb=qbo.qb)}
    methods = [method.Name for method in PaymentMethod.all(qb=qbo.qb)]

    assert info.CompanyName == "Sandbox Company"
    assert accounts == {
        "Checking": "Bank",
        "Undeposited Funds": "Other Current Asset",
        "Accounts Receivable (A/R)": "Accounts Receivable",
        "Services": "Income",
    }
    assert methods == [
        "Cash",
        "Check",
        "Visa",
        "MasterCard",
        "Discover",
        "American Express",
        "Diners Club",
        "ACH/EFT",
    ]


def test_customer_create_then_read_returns_string_ids_sync_token_and_metadata(qbo):
    created = make_customer(qbo.qb, "Acme HVAC", email="ops@acme.test")

    read = Customer.get(created.Id, qb=qbo.qb)

    assert read.Id == created.Id and read.Id.isdigit()
    assert read.SyncToken == "0"
    assert read.DisplayName == "Acme HVAC"
    assert read.PrimaryEmailAddr.Address == "ops@acme.test"
    assert read.MetaData["CreateTime"] == read.MetaData["LastUpdatedTime"]
    assert read.Active is True


def test_full_update_nulls_omitted_writable_fields_and_increments_sync_token(qbo):
    created = Customer()
    created.DisplayName = "Full Update Co"
    created.CompanyName = "Full Update Company LLC"
    created.Notes = "gate code 1234"
    created = created.save(qb=qbo.qb)
    replacement = Customer()
    replacement.Id, replacement.SyncToken = created.Id, created.SyncToken
    replacement.DisplayName = "Full Update Co"

    replacement.save(qb=qbo.qb)

    read = Customer.get(created.Id, qb=qbo.qb)
    assert read.SyncToken == "1"
    assert read.CompanyName == "" and read.Notes == ""  # python-quickbooks defaults: absent in the answer


def test_sparse_update_keeps_omitted_fields(qbo):
    created = Customer()
    created.DisplayName = "Sparse Co"
    created.CompanyName = "Sparse Company LLC"
    created = created.save(qb=qbo.qb)
    change = Customer()
    change.Id, change.SyncToken, change.sparse = created.Id, created.SyncToken, True
    change.Notes = "call first"
    del change.DisplayName, change.CompanyName  # send only what changes

    change.save(qb=qbo.qb)

    read = Customer.get(created.Id, qb=qbo.qb)
    assert (read.DisplayName, read.CompanyName, read.Notes) == ("Sparse Co", "Sparse Company LLC", "call first")
    assert read.SyncToken == "1"


def test_stale_sync_token_is_5010(qbo):
    customer = make_customer(qbo.qb, "Stale Co")
    first, second = Customer.get(customer.Id, qb=qbo.qb), Customer.get(customer.Id, qb=qbo.qb)
    first.Notes = "first writer"
    first.save(qb=qbo.qb)
    second.Notes = "second writer"

    with pytest.raises(QuickbooksException) as error:
        second.save(qb=qbo.qb)

    assert error.value.error_code == 5010
    assert error.value.message == "Stale Object Error"
    assert Customer.get(customer.Id, qb=qbo.qb).Notes == "first writer"


def test_duplicate_customer_display_name_is_6240_ignoring_case(qbo):
    existing = make_customer(qbo.qb, "O'Brien Plumbing")

    with pytest.raises(QuickbooksException) as error:
        make_customer(qbo.qb, "o'brien PLUMBING")

    assert error.value.error_code == 6240
    assert error.value.message == "Duplicate Name Exists Error"
    assert f"Id={existing.Id}" in error.value.detail


def test_fault_wire_shape_is_qbo_validation_fault_with_string_code(qbo):
    make_customer(qbo.qb, "Wire Co")

    answer = _raw_post(qbo, "customer", {"DisplayName": "Wire Co"})

    assert answer.status_code == 400
    body = answer.json()
    assert body["Fault"]["type"] == "ValidationFault"
    assert body["Fault"]["Error"] == [
        {
            "Message": "Duplicate Name Exists Error",
            "Detail": body["Fault"]["Error"][0]["Detail"],
            "code": "6240",
            "element": "",
        },
    ]
    assert body["time"]


def test_reading_a_missing_id_is_610_object_not_found(qbo):
    with pytest.raises(ObjectNotFoundException) as error:
        Customer.get("999", qb=qbo.qb)

    assert error.value.error_code == 610


def test_updating_a_missing_id_is_610(qbo):
    customer = Customer()
    customer.Id, customer.SyncToken, customer.DisplayName = "999", "0", "Ghost"

    with pytest.raises(ObjectNotFoundException):
        customer.save(qb=qbo.qb)


def test_invoice_without_lines_is_2020_required_param_missing(qbo):
    customer = make_customer(qbo.qb, "No Lines Co")

    with pytest.raises(ValidationException) as error:
        invoice_object(customer.Id, "1").save(qb=qbo.qb)

    assert error.value.error_code == 2020
    assert "Line" in error.value.detail


def test_payment_without_total_is_2020(qbo):
    customer = make_customer(qbo.qb, "No Total Co")
    payment = payment_object(customer.Id, "10")
    payment.TotalAmt = None

    with pytest.raises(ValidationException) as error:
        payment.save(qb=qbo.qb)

    assert error.value.error_code == 2020
    assert "TotalAmt" in error.value.detail


def test_customer_without_any_name_is_2020(qbo):
    with pytest.raises(ValidationException) as error:
        Customer().save(qb=qbo.qb)

    assert error.value.error_code == 2020


@pytest.mark.parametrize("broken", ["customer", "item", "payment_method", "deposit_account", "linked_invoice"])
def test_unknown_references_are_2500_invalid_reference_id(qbo, broken):
    customer = make_customer(qbo.qb, "Ref Co")
    item = make_item(qbo.qb)
    invoice = make_invoice(qbo.qb, customer, item, "100")
    if broken in ("customer", "item"):
        obj = invoice_object(
            "999" if broken == "customer" else customer.Id, "999" if broken == "item" else item.Id, "5"
        )
    else:
        obj = payment_object(customer.Id, "10", {"999" if broken == "linked_invoice" else invoice.Id: "10"})
        if broken == "payment_method":
            obj.PaymentMethodRef = ref("999")
        if broken == "deposit_account":
            obj.DepositToAccountRef = ref("999")

    with pytest.raises(ValidationException) as error:
        obj.save(qb=qbo.qb)

    assert error.value.error_code == 2500
    assert error.value.message == "Invalid Reference Id"


def test_doc_number_longer_than_21_characters_is_refused(qbo):
    customer, item = make_customer(qbo.qb, "Doc Co"), make_item(qbo.qb)

    with pytest.raises(ValidationException) as error:
        make_invoice(qbo.qb, customer, item, "10", doc_number="X" * 22)

    assert error.value.error_code == 2050
    assert "Max:21" in error.value.detail


def test_duplicate_invoice_doc_number_is_6140(qbo):
    customer, item = make_customer(qbo.qb, "Dup Doc Co"), make_item(qbo.qb)
    first = make_invoice(qbo.qb, customer, item, "10", doc_number="INV-1042")

    with pytest.raises(QuickbooksException) as error:
        make_invoice(qbo.qb, customer, item, "20", doc_number="INV-1042")

    assert error.value.error_code == 6140
    assert f"TxnId={first.Id}" in error.value.detail


def test_invoice_without_doc_number_has_none_when_custom_transaction_numbers_are_on(qbo):
    # Intuit (Invoice reference, DocNumber): CustomTxnNumbers on (us-ast's default) and no number sent -> null.
    customer, item = make_customer(qbo.qb, "Auto Doc Co"), make_item(qbo.qb)

    invoice = make_invoice(qbo.qb, customer, item, "10")

    assert invoice.DocNumber is None


def test_item_name_is_unique_6240(qbo):
    make_item(qbo.qb, "Labor")

    with pytest.raises(QuickbooksException) as error:
        make_item(qbo.qb, "labor")

    assert error.value.error_code == 6240


def test_service_item_needs_an_income_account(qbo):
    item = Item()
    item.Name, item.Type = "No Account", "Service"

    with pytest.raises(ValidationException) as error:
        item.save(qb=qbo.qb)

    assert error.value.error_code == 2020


def test_payment_deposit_defaults_to_undeposited_funds(qbo):
    customer = make_customer(qbo.qb, "Deposit Co")

    payment = payment_object(customer.Id, "10").save(qb=qbo.qb)

    assert payment.DepositToAccountRef.name == "Undeposited Funds"


def test_payment_deposited_to_a_bank_account_is_accepted(qbo):
    customer = make_customer(qbo.qb, "Bank Deposit Co")
    payment = payment_object(customer.Id, "10")
    payment.DepositToAccountRef = ref("1")

    assert payment.save(qb=qbo.qb).DepositToAccountRef.name == "Checking"


def test_payment_deposited_to_an_income_account_is_6000(qbo):
    customer = make_customer(qbo.qb, "Income Deposit Co")
    payment = payment_object(customer.Id, "10")
    payment.DepositToAccountRef = ref("4")  # Services (Income)

    with pytest.raises(QuickbooksException) as error:
        payment.save(qb=qbo.qb)

    assert error.value.error_code == 6000


def test_amounts_are_accepted_as_strings_and_numbers_and_answered_as_numbers(qbo):
    customer = make_customer(qbo.qb, "Amounts Co")

    as_string = _raw_post(qbo, "payment", {"CustomerRef": {"value": customer.Id}, "TotalAmt": "65.50"})
    as_number = _raw_post(qbo, "payment", {"CustomerRef": {"value": customer.Id}, "TotalAmt": 65.5})

    for answer in (as_string, as_number):
        assert answer.status_code == 200
        assert '"TotalAmt":65.5' in answer.text
    decimal_read = Payment.get(as_string.json()["Payment"]["Id"], qb=qbo.qb)
    assert decimal_read.TotalAmt == Decimal("65.50")


def test_a_non_numeric_amount_is_refused(qbo):
    customer = make_customer(qbo.qb, "Bad Amount Co")

    answer = _raw_post(qbo, "payment", {"CustomerRef": {"value": customer.Id}, "TotalAmt": "sixty"})

    assert answer.status_code == 400
    assert answer.json()["Fault"]["Error"][0]["code"] == "2010"


def test_customers_cannot_be_deleted_only_made_inactive(qbo):
    customer = make_customer(qbo.qb, "Keep Co")

    with pytest.raises(UnsupportedException):
        qbo.qb.delete_object("Customer", json.dumps({"Id": customer.Id, "SyncToken": "0"}))

    customer.Active = False
    assert customer.save(qb=qbo.qb).Active is False


def test_company_info_can_be_sparse_updated(qbo):
    info = CompanyInfo.get(qbo.realm_id, qb=qbo.qb)
    answer = qbo.qb.update_object(
        "CompanyInfo", json.dumps({"Id": info.Id, "SyncToken": "0", "sparse": True, "CompanyName": "Renamed"})
    )

    assert answer["CompanyInfo"]["CompanyName"] == "Renamed"
    assert CompanyInfo.get(qbo.realm_id, qb=qbo.qb).LegalName == "Sandbox Company"


def test_invoice_answers_refs_with_names_and_a_subtotal_line(qbo):
    customer, item = make_customer(qbo.qb, "Names Co"), make_item(qbo.qb, "Diagnostics")

    invoice = make_invoice(qbo.qb, customer, item, "80")

    read = Invoice.get(invoice.Id, qb=qbo.qb)
    assert read.CustomerRef.name == "Names Co"
    assert read.Line[0].SalesItemLineDetail.ItemRef.name == "Diagnostics"
    assert [line.DetailType for line in read.Line] == ["SalesItemLineDetail", "SubTotalLineDetail"]


def test_an_update_copies_what_it_keeps_so_the_stored_object_is_never_shared():
    """Books copies the fields it writes (its own JSON copy, not copy.deepcopy): nothing of the stored entity or of
    the request body may be shared with what is stored next."""
    from quickbooks_export.sandbox.accounting import Books

    stored = {
        "Id": "7",
        "SyncToken": "0",
        "Line": [{"Amount": Decimal("10"), "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
        "CustomerRef": {"value": "3", "name": "A"},
        "TxnTaxDetail": {"TotalTax": Decimal("0"), "TaxLine": []},
    }
    copied = Books._writable(None, "Invoice", stored)

    assert copied["Line"] == stored["Line"] and copied["CustomerRef"] == stored["CustomerRef"]
    assert "Id" not in copied and "TxnTaxDetail" in copied
    copied["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = "2"
    copied["CustomerRef"]["value"] = "4"
    copied["TxnTaxDetail"]["TaxLine"].append({})
    assert stored["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == "1"
    assert stored["CustomerRef"]["value"] == "3" and stored["TxnTaxDetail"]["TaxLine"] == []
