"""factory-boy factories for every billing model.

They write rows directly, for arranging a test. Behaviour under test goes through billing.services; `issued_invoice`
builds an issued invoice through the services so its state is one the product could reach.
"""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from billing import services
from billing.models import (
    BusinessUnit,
    Customer,
    Invoice,
    InvoiceLine,
    Job,
    ManualHandlingItem,
    Payment,
    PaymentApplication,
    Refund,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class BusinessUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessUnit

    name = factory.Sequence(lambda n: f"Unit {n:03d}")
    slug = factory.LazyAttribute(lambda unit: unit.name.lower().replace(" ", "-"))


class CustomerFactory(factory.django.DjangoModelFactory):
    """A customer of the only business unit unless given one (as billing.services.customer_create does)."""

    class Meta:
        model = Customer

    business_unit = factory.LazyFunction(services.business_unit_default)
    display_name = factory.Sequence(lambda n: f"Customer {n:04d}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    phone = "555-0100"
    billing_line1 = "1 Main St"
    billing_city = "Springfield"
    billing_region = "IL"
    billing_postal_code = "62701"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    customer = factory.SubFactory(CustomerFactory)
    business_unit = factory.SelfAttribute("customer.business_unit")
    number = factory.Sequence(lambda n: f"JOB-{n:05d}")
    title = "Water heater replacement"
    scheduled_on = datetime.date(2026, 11, 2)


class InvoiceFactory(factory.django.DjangoModelFactory):
    """A draft invoice with no lines."""

    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    business_unit = factory.SelfAttribute("customer.business_unit")
    number = factory.Sequence(lambda n: f"INV-{1000 + n}")
    status = Invoice.Status.DRAFT


class InvoiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    service_name = "Labor"
    quantity = Decimal("1.00")
    unit_price = Decimal("100.00")
    amount = factory.LazyAttribute(lambda line: line.quantity * line.unit_price)


class PaymentFactory(factory.django.DjangoModelFactory):
    """A payment with nothing applied (all unapplied credit)."""

    class Meta:
        model = Payment

    customer = factory.SubFactory(CustomerFactory)
    business_unit = factory.SelfAttribute("customer.business_unit")
    amount = Decimal("100.00")
    method = Payment.Method.CHECK
    reference = factory.Sequence(lambda n: f"{4000 + n}")
    received_on = datetime.date(2026, 11, 10)


class PaymentApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentApplication

    payment = factory.SubFactory(PaymentFactory)
    invoice = factory.SubFactory(InvoiceFactory, customer=factory.SelfAttribute("..payment.customer"))
    amount = factory.SelfAttribute("payment.amount")


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    payment = factory.SubFactory(PaymentFactory)
    amount = Decimal("10.00")
    reason = "Customer overcharged"
    refunded_on = datetime.date(2026, 11, 12)
    method = Refund.Method.CHECK


class ManualHandlingItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ManualHandlingItem

    kind = ManualHandlingItem.Kind.REFUND_OF_EXPORTED_PAYMENT
    payment = factory.SubFactory(PaymentFactory)
    customer = factory.SelfAttribute("payment.customer")
    amount = Decimal("10.00")
    quickbooks_reference = "123"
    instructions = "Record a refund in QuickBooks."


def issued_invoice(
    *,
    customer: Customer | None = None,
    amount: str = "100.00",
    sales_tax: str = "0.00",
    number: str | None = None,
) -> Invoice:
    """An open invoice of one line for `amount` (+ tax), made through the services."""
    customer = customer or CustomerFactory()
    invoice = services.invoice_create(
        customer=customer,
        number=number or InvoiceFactory.build(customer=customer).number,
        sales_tax=sales_tax,
        lines=[services.LineInput(service_name="Labor", unit_price=amount)],
    )
    return services.invoice_issue(invoice=invoice, issued_on=datetime.date(2026, 11, 1))


def pay(invoice: Invoice, amount: str, *, payment_amount: str | None = None, **kwargs) -> Payment:
    """Record a payment of `payment_amount` (default: `amount`) applying `amount` to `invoice`."""
    return services.payment_record(
        customer=invoice.customer,
        amount=payment_amount or amount,
        method=kwargs.pop("method", Payment.Method.CHECK),
        received_on=kwargs.pop("received_on", datetime.date(2026, 11, 10)),
        applications=[services.ApplicationInput(invoice=invoice, amount=amount)],
        **kwargs,
    )


def split_payment(*parts: tuple[Invoice, str], method: str = Payment.Method.CASH) -> Payment:
    """One payment of the customer's, split across invoices: split_payment((inv_a, "60.00"), (inv_b, "40.00"))."""
    total = sum((Decimal(amount) for _, amount in parts), Decimal("0.00"))
    return services.payment_record(
        customer=parts[0][0].customer,
        amount=str(total),
        method=method,
        received_on=datetime.date(2026, 11, 10),
        applications=[services.ApplicationInput(invoice=invoice, amount=amount) for invoice, amount in parts],
    )
