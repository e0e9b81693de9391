"""The real clients (intuit-oauth, python-quickbooks) wired to a sandbox, and small object builders."""

from dataclasses import dataclass
from decimal import Decimal

from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.tax import TxnTaxDetail

from quickbooks_export.sandbox import SandboxServer

REDIRECT_URI = "http://localhost:8000/quickbooks/callback"
SERVICES_INCOME_ACCOUNT_ID = "4"  # seeded: Checking 1, Undeposited Funds 2, A/R 3, Services 4


@dataclass
class Connection:
    server: SandboxServer
    auth_client: AuthClient
    qb: QuickBooks
    realm_id: str


def auth_client(server: SandboxServer, *, redirect_uri: str = REDIRECT_URI, **kwargs) -> AuthClient:
    config = server.config
    return AuthClient(config.client_id, config.client_secret, redirect_uri, server.discovery_url, **kwargs)


def qb_client(server: SandboxServer, client: AuthClient, realm_id: str) -> QuickBooks:
    qb = QuickBooks(
        auth_client=client,
        refresh_token=client.refresh_token,
        company_id=realm_id,
        minorversion=75,
        use_decimal=True,
    )
    qb.api_url_v3 = server.api_url
    return qb


def connect(server: SandboxServer, *, realm_id: str | None = None) -> Connection:
    """Authorize (a new company unless `realm_id`), exchange the code with intuit-oauth, build the QBO client."""
    grant = server.authorize(REDIRECT_URI, state="test-state", realm_id=realm_id)
    client = auth_client(server)
    client.get_bearer_token(grant.code, realm_id=grant.realm_id)
    return Connection(server, client, qb_client(server, client, grant.realm_id), grant.realm_id)


def connect_company(server: SandboxServer, profile: str, *, seed: str | None = None, **options) -> Connection:
    """A new company of `profile` (and `seed`), connected through intuit-oauth like any other."""
    realm_id = server.create_company(f"{profile} Co", profile=profile, seed=seed, **options)
    return connect(server, realm_id=realm_id)


def ref(value: str) -> Ref:
    reference = Ref()
    reference.value = value
    return reference


def make_customer(qb: QuickBooks, name: str, *, email: str | None = None, request_id: str | None = None) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    if email:
        customer.PrimaryEmailAddr = {"Address": email}
    return customer.save(qb=qb, request_id=request_id)


def make_item(qb: QuickBooks, name: str = "Labor") -> Item:
    item = Item()
    item.Name = name
    item.Type = "Service"
    item.IncomeAccountRef = ref(SERVICES_INCOME_ACCOUNT_ID)
    return item.save(qb=qb)


def invoice_object(customer_id: str, item_id: str, *amounts: str, doc_number=None, tax=None) -> Invoice:
    invoice = Invoice()
    invoice.CustomerRef = ref(customer_id)
    invoice.DocNumber = doc_number
    for amount in amounts:
        line = SalesItemLine()
        line.Amount = Decimal(amount)
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = ref(item_id)
        invoice.Line.append(line)
    if tax is not None:
        invoice.TxnTaxDetail = TxnTaxDetail()
        invoice.TxnTaxDetail.TotalTax = Decimal(tax)
    return invoice


def make_invoice(qb: QuickBooks, customer: Customer, item: Item, *amounts: str, **kwargs) -> Invoice:
    return invoice_object(customer.Id, item.Id, *amounts, **kwargs).save(qb=qb)


def payment_object(customer_id: str, total: str, applications: dict[str, str] | None = None) -> Payment:
    payment = Payment()
    payment.CustomerRef = ref(customer_id)
    payment.TotalAmt = Decimal(total)
    for invoice_id, amount in (applications or {}).items():
        line = PaymentLine()
        line.Amount = Decimal(amount)
        invoice = Invoice()
        invoice.Id = invoice_id
        line.LinkedTxn = [invoice.to_linked_txn()]
        payment.Line.append(line)
    return payment


def make_payment(
    qb: QuickBooks, customer: Customer, total: str, applications=None, *, request_id: str | None = None
) -> Payment:
    return payment_object(customer.Id, total, applications).save(qb=qb, request_id=request_id)
