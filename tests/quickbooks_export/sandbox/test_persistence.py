"""A sandbox with a data file keeps companies, entities, tokens and requestid answers across a restart."""

import json
from decimal import Decimal

import pytest
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice

from .clients import auth_client, connect, make_customer, make_invoice, make_item, make_payment, qb_client


def test_restart_with_the_same_data_file_keeps_everything(qbo_sandbox_factory, tmp_path):
    data_file = tmp_path / "qbo_sandbox.json"
    first = qbo_sandbox_factory(data_file=data_file)
    qbo = connect(first)
    customer = make_customer(qbo.qb, "Persisted Co", request_id="persist-1")
    invoice = make_invoice(qbo.qb, customer, make_item(qbo.qb), "100.10")
    make_payment(qbo.qb, customer, "50", {invoice.Id: "40.05"})
    first.stop()

    second = qbo_sandbox_factory(data_file=data_file)
    client = auth_client(second, access_token=qbo.auth_client.access_token, refresh_token=qbo.auth_client.refresh_token)
    qb = qb_client(second, client, qbo.realm_id)

    assert Invoice.get(invoice.Id, qb=qb).Balance == Decimal("60.05")
    assert Customer.get(customer.Id, qb=qb).Balance == Decimal("50.10")  # 60.05 open - 9.95 unapplied
    assert make_customer(qb, "Ignored", request_id="persist-1").Id == customer.Id
    with pytest.raises(QuickbooksException) as duplicate:
        make_customer(qb, "persisted co")
    assert duplicate.value.error_code == 6240
    client.refresh()
    assert make_customer(qb, "New After Restart").Id
    assert json.loads(data_file.read_text())["companies"][0]["realm_id"] == qbo.realm_id


def test_restart_keeps_each_companys_profile_and_its_rules(qbo_sandbox_factory, tmp_path):
    from quickbooks.objects.company_info import CompanyInfo

    data_file = tmp_path / "qbo_sandbox.json"
    first = qbo_sandbox_factory(data_file=data_file)
    realm_id = first.create_company("Kept UK", profile="uk")
    first.stop()

    second = qbo_sandbox_factory(data_file=data_file)
    qbo = connect(second, realm_id=realm_id)
    customer, item = make_customer(qbo.qb, "After Restart"), make_item(qbo.qb)

    assert second.companies()[0]["profile"] == "uk"
    assert CompanyInfo.get(realm_id, qb=qbo.qb).Country == "GB"
    with pytest.raises(QuickbooksException) as missing_vat:
        make_invoice(qbo.qb, customer, item, "10")
    assert missing_vat.value.error_code == 6000


def _wait_for(condition, seconds: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_changes_after_a_write_are_written_again_for_each_company(qbo_sandbox_factory, tmp_path):
    """The data file re-encodes only companies that changed: a change through the API, by hand, or to another
    company after a write must still reach the file."""
    data_file = tmp_path / "qbo_sandbox.json"
    first = qbo_sandbox_factory(data_file=data_file)
    qbo = connect(first)
    other = first.create_company("Untouched Co")
    customer = make_customer(qbo.qb, "Before Rename")
    assert _wait_for(lambda: data_file.exists() and "Before Rename" in data_file.read_text())

    first.edit_entity(qbo.realm_id, "Customer", customer.Id, {"DisplayName": "After Rename"})  # by hand
    make_customer(qbo.qb, "Made Later", request_id="later-1")  # through the API, with a requestid
    first.create_entity(other, "Customer", {"DisplayName": "Other Company Customer"})
    first.stop()

    saved = json.loads(data_file.read_text())
    by_realm = {company["realm_id"]: company for company in saved["companies"]}
    names = {c["DisplayName"] for c in by_realm[qbo.realm_id]["entities"]["Customer"].values()}
    assert {"After Rename", "Made Later"} <= names and "Before Rename" not in names
    assert [key for key, _, _ in by_realm[qbo.realm_id]["requestids"]] == ["later-1"]
    assert [c["DisplayName"] for c in by_realm[other]["entities"]["Customer"].values()] == ["Other Company Customer"]


def test_closing_writes_the_latest_state_at_once_even_between_spaced_writes(tmp_path):
    import time

    from quickbooks_export.sandbox.store import DataFile

    state = {"n": 0}
    data_file = DataFile(tmp_path / "state.json", lambda: json.dumps(state), delay=0.01, interval=60)
    data_file.start()
    data_file.mark_dirty()
    assert _wait_for(lambda: data_file.path.exists() and json.loads(data_file.path.read_text()) == {"n": 0})
    state["n"] = 1
    data_file.mark_dirty()  # the next write waits up to 60 s ...
    started = time.monotonic()
    data_file.close()  # ... unless the sandbox stops: then it is written now

    assert time.monotonic() - started < 5
    assert json.loads(data_file.path.read_text()) == {"n": 1}


def test_a_requestid_answered_again_after_being_forgotten_is_saved_with_its_new_answer(qbo_sandbox_factory, tmp_path):
    data_file = tmp_path / "qbo_sandbox.json"
    first = qbo_sandbox_factory(data_file=data_file)
    qbo = connect(first)
    original = make_customer(qbo.qb, "First Answer", request_id="again-1")
    assert _wait_for(lambda: data_file.exists() and "First Answer" in data_file.read_text())
    first.forget_request_ids(qbo.realm_id)
    second_answer = make_customer(qbo.qb, "Second Answer", request_id="again-1")  # performed again
    first.stop()

    second = qbo_sandbox_factory(data_file=data_file)
    client = auth_client(second, access_token=qbo.auth_client.access_token, refresh_token=qbo.auth_client.refresh_token)
    replayed = make_customer(qb_client(second, client, qbo.realm_id), "Ignored", request_id="again-1")

    assert second_answer.Id != original.Id
    assert replayed.Id == second_answer.Id and replayed.DisplayName == "Second Answer"
