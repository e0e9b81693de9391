"""The SOAP endpoint as a program sees it: WSDL, tickets, hostile XML, and the simulated company's strictness."""

from decimal import Decimal

import pytest

from quickbooks_desktop import qbxml, soap
from quickbooks_desktop.simulator import DesktopCompany, ParseFailure

pytestmark = pytest.mark.django_db
URL = "/quickbooks-desktop/qbwc/"


def call(client, operation: str, **parameters):
    response = client.generic("POST", URL, soap.build_call(operation, **parameters), content_type="text/xml")
    return response, soap.parse_result(operation, response.content) if response.status_code == 200 else None


def test_the_wsdl_describes_the_eight_operations(client):
    response = client.get(URL + "?wsdl")
    assert response.status_code == 200
    text = response.content.decode()
    for operation in soap.OPERATIONS:
        assert f'<wsdl:operation name="{operation}">' in text
    assert 'location="http://testserver/quickbooks-desktop/qbwc/"' in text


def test_server_and_client_version(client):
    assert call(client, "serverVersion")[1].startswith("FieldSync")
    assert call(client, "clientVersion", strVersion="2.3.0.215")[1] == ""


def test_an_unknown_ticket_gets_nothing_and_a_negative_percentage(client, desktop):
    assert call(client, "sendRequestXML", ticket="forged", strCompanyFileName="x", qbXMLCountry="US",
                qbXMLMajorVers=13, qbXMLMinorVers=0)[1] == ""  # fmt: skip
    assert call(client, "receiveResponseXML", ticket="forged", response="<QBXML/>", hresult="", message="")[1] == -1
    assert "log in again" in call(client, "getLastError", ticket="forged")[1]


def test_xml_with_entities_is_refused_without_being_expanded(client):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<authenticate xmlns="http://developer.intuit.com/"><strUserName>&b;</strUserName></authenticate>'
        b"</soap:Body></soap:Envelope>"
    )
    response = client.generic("POST", URL, bomb, content_type="text/xml")
    assert response.status_code == 500 and b"DTDs or entities, which are refused" in response.content


def test_an_unknown_operation_is_a_client_fault(client):
    body = soap.build_call("serverVersion").replace(b"serverVersion", b"deleteEverything")
    response = client.generic("POST", URL, body, content_type="text/xml")
    assert response.status_code == 500 and b"Unknown operation" in response.content


def test_an_old_quickbooks_is_told_what_to_do(client, desktop, web_connector):
    from billing.models import Payment
    from quickbooks_desktop import services
    from tests.factories import issued_invoice, pay

    pay(issued_invoice(amount="10.00", number="INV-9001"), "10.00")
    services.desktop_export_batch_start(payments=list(Payment.objects.values_list("pk", flat=True)), selection="t")
    ticket, code = call(client, "authenticate", strUserName="fieldsync", strPassword="a long web connector password")[1]
    assert code == ""
    sent = call(client, "sendRequestXML", ticket=ticket, strCompanyFileName="C:\\a.qbw", qbXMLCountry="US",
                qbXMLMajorVers=7, qbXMLMinorVers=0)[1]  # fmt: skip
    assert sent == ""
    assert "needs 13.0" in call(client, "getLastError", ticket=ticket)[1]


def test_a_second_company_file_is_refused(client, desktop, company, web_connector):
    from billing.models import Payment
    from quickbooks_desktop import services
    from tests.factories import issued_invoice, pay

    pay(issued_invoice(amount="10.00", number="INV-9101"), "10.00")
    web_connector(company_file="C:\\one.qbw").run()  # nothing queued: binds nothing
    services.desktop_export_batch_start(payments=list(Payment.objects.values_list("pk", flat=True)), selection="t")
    web_connector(company_file="C:\\one.qbw").run()
    pay(issued_invoice(amount="20.00", number="INV-9102"), "20.00")
    services.desktop_export_batch_start(payments=list(Payment.objects.values_list("pk", flat=True)), selection="t")

    report = web_connector(company_file="C:\\other.qbw").run()

    assert any("FieldSync exports to C:\\one.qbw" in error for error in report.errors)
    assert len(company.transactions("ReceivePayment")) == 1


# --- The simulated company file's own rules -----------------------------------------------------------------------


def test_our_adds_are_in_schema_order_and_out_of_order_children_are_refused():
    company = DesktopCompany()
    good = qbxml.message_set([qbxml.customer_add("1", qbxml.CustomerData(name="Ann", phone="555", email="a@b.c"))])
    assert 'statusCode="0"' in company.process(good)
    bad = good.replace("<Name>Ann</Name>", "").replace("</CustomerAdd>", "<Name>Bob</Name></CustomerAdd>")
    with pytest.raises(ParseFailure, match="out of schema order"):
        company.process(bad)


def test_the_company_answers_3200_for_a_stale_edit_sequence_and_3120_for_a_missing_object():
    company = DesktopCompany()
    added = qbxml.parse_response(
        company.process(qbxml.message_set([qbxml.customer_add("1", qbxml.CustomerData("Ann"))]))
    )
    customer = added["1"].found[0]

    def mod(list_id, edit_sequence):
        return (
            '<?xml version="1.0"?><?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"><CustomerModRq '
            f'requestID="2"><CustomerMod><ListID>{list_id}</ListID><EditSequence>{edit_sequence}</EditSequence>'
            "<Name>Ann B</Name></CustomerMod></CustomerModRq></QBXMLMsgsRq></QBXML>"
        )

    assert qbxml.parse_response(company.process(mod(customer.qb_id, "1")))["2"].status_code == 3200
    assert qbxml.parse_response(company.process(mod("NOPE", "1")))["2"].status_code == 3120
    assert qbxml.parse_response(company.process(mod(customer.qb_id, customer.edit_sequence)))["2"].ok


def test_the_company_computes_amounts_and_never_echoes_them():
    company = DesktopCompany()

    def one(element):
        return qbxml.parse_response(company.process(qbxml.message_set([element])))[element.get("requestID")]

    customer = one(qbxml.customer_add("1", qbxml.CustomerData("Ann"))).found[0]
    item = one(qbxml.item_service_add("2", name="Labor", income_account="Services")).found[0]
    line = qbxml.InvoiceLineData(item.qb_id, "Labor", Decimal("3"), Decimal("100.00"))
    invoice = one(qbxml.invoice_add("3", qbxml.InvoiceData(customer.qb_id, "2026-11-01", "INV-1", lines=[line])))
    assert invoice.found[0].total == Decimal("100.00")
    too_much = qbxml.PaymentData(
        customer.qb_id, "2026-11-02", "FS-P1", Decimal("150"), [(invoice.found[0].qb_id, Decimal("150"))]
    )
    assert one(qbxml.receive_payment_add("4", too_much)).status_code == 3180
    bad_account = one(qbxml.item_service_add("5", name="Parts", income_account="No such account"))
    assert bad_account.status_code == 3140


def test_switching_the_company_file_lets_the_next_file_in_and_looks_everything_up_again(client, desktop, web_connector):
    from billing.models import Payment
    from quickbooks_desktop import services
    from quickbooks_desktop.simulator import DesktopCompany
    from tests.factories import issued_invoice, pay

    invoice = issued_invoice(amount="30.00", number="INV-9201")
    pay(invoice, "30.00")
    services.desktop_export_batch_start(payments=list(Payment.objects.values_list("pk", flat=True)), selection="t")
    web_connector(company_file="C:\\one.qbw").run()
    services.desktop_company_forget()
    other = DesktopCompany()
    pay(issued_invoice(customer=invoice.customer, amount="20.00", number="INV-9202"), "20.00")
    services.desktop_export_batch_start(
        payments=list(Payment.objects.filter(export_status="not_exported").values_list("pk", flat=True)), selection="t"
    )

    web_connector(company_file="C:\\two.qbw", company=other).run()

    assert [t.ref_number for t in other.transactions("Invoice")] == ["INV-9202"]
    assert len(other.records("Customer")) == 1
