"""A realistic, deterministic demo company, and a fast bulk generator for benchmarks.

The story company is written through the services (so every rule holds); the bulk generator writes rows with
bulk_create in a few statements per table (so 100,000 payments take seconds) and produces only states the
services could have produced: every invoice has one line, every payment is applied to exactly one invoice of its
customer, never beyond the invoice's balance, and the invoice's status matches its balance.
"""

import datetime
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from . import services
from .models import BusinessUnit, Customer, Invoice, InvoiceLine, Job, Payment, PaymentApplication, Refund
from .services import ApplicationInput, LineInput

BASE_DATE = datetime.date(2026, 10, 1)
DEMO_USERNAME = "admin"


@dataclass
class DemoSummary:
    customers: int = 0
    jobs: int = 0
    invoices: int = 0
    payments: int = 0
    refunds: int = 0
    manual_items: int = 0
    notes: list[str] = field(default_factory=list)


def _day(n: int) -> datetime.date:
    return BASE_DATE + datetime.timedelta(days=n)


_CUSTOMERS = [
    # display name, company, e-mail, phone, street, city
    (
        "O'Brien Plumbing Supply",
        "O'Brien Plumbing Supply LLC",
        "ap@obrienplumbing.example",
        "312-555-0142",
        "88 Wacker Dr",
        "Chicago",
    ),
    ("Maria Gonzalez", "", "maria.gonzalez@example.com", "312-555-0199", "1450 W Addison St", "Chicago"),
    ("John Smith", "", "john.smith@example.com", "773-555-0110", "22 Elm Ct", "Evanston"),
    # A second, different John Smith: same name, no e-mail. Must never be merged with the first.
    ("John Smith", "", "", "773-555-0188", "901 Oak Ave", "Oak Park"),
    (
        "D'Angelo & Sons Bakery",
        "D'Angelo & Sons",
        "office@dangelobakery.example",
        "708-555-0123",
        "17 Harlem Ave",
        "Forest Park",
    ),
    (
        "Lakeview Property Management",
        "Lakeview PM Inc.",
        "billing@lakeviewpm.example",
        "312-555-0177",
        "3000 N Clark St",
        "Chicago",
    ),
    (
        "Chen Family Dental",
        "Chen Family Dental PC",
        "frontdesk@chendental.example",
        "847-555-0134",
        "5 Davis St",
        "Evanston",
    ),
    ("Patel, Anita", "", "", "630-555-0166", "44 Maple Ln", "Naperville"),
    (
        "Riverside Elementary PTA",
        "",
        "treasurer@riversidepta.example",
        "708-555-0101",
        "10 School Rd",
        "Riverside",
    ),
    (
        "Ace Hardware #1123",
        "Ace Hardware",
        "store1123@acehw.example",
        "312-555-0150",
        "600 S State St",
        "Chicago",
    ),
]


def _invoice(customer, job, number, lines, *, tax="0.00", issue=True, day=0):
    invoice = services.invoice_create(
        customer=customer,
        job=job,
        number=number,
        sales_tax=tax,
        lines=[
            LineInput(service_name=s, description=d, quantity=q, unit_price=p, taxable=not rest or rest[0])
            for s, d, q, p, *rest in lines
        ],
    )
    if issue:
        invoice = services.invoice_issue(invoice=invoice, issued_on=_day(day), due_on=_day(day + 30))
    return invoice


def _pay(customer, amount, applications, *, method, day, reference=""):
    return services.payment_record(
        customer=customer,
        amount=amount,
        method=method,
        received_on=_day(day),
        reference=reference,
        applications=[ApplicationInput(invoice=invoice, amount=value) for invoice, value in applications],
    )


@transaction.atomic
def seed_story_company() -> DemoSummary:
    """Customers, jobs, invoices in every state a field-service office meets, with their payments and refunds."""
    summary = DemoSummary()
    customers = [
        services.customer_create(
            display_name=name,
            company_name=company,
            email=email,
            phone=phone,
            billing_line1=street,
            billing_city=city,
            billing_region="IL",
            billing_postal_code="606" + f"{i:02d}",
        )
        for i, (name, company, email, phone, street, city) in enumerate(_CUSTOMERS)
    ]
    obrien, maria, smith_a, smith_b, dangelo, lakeview, chen, patel, pta, ace = customers
    # The rates the office charges; new invoices pick one and their tax is computed (older ones carry an amount).
    services.tax_rate_create(name="Chicago, IL", percentage="10.25")
    services.tax_rate_create(name="Illinois", percentage="6.25")
    summary.customers = len(customers)

    # The kinds of work the office books (each can carry its own QuickBooks class / location, QuickBooks page).
    repair, install, maintenance, inspection = (
        services.job_type_create(business_unit=obrien.business_unit, name=name)
        for name in ("Repair", "Install", "Maintenance", "Inspection")
    )

    def job(customer, n, title, day, job_type):
        return services.job_create(
            customer=customer,
            number=f"JOB-{2000 + n}",
            title=title,
            service_address=customer.billing_line1,
            scheduled_on=_day(day),
            completed_on=_day(day + 1),
            status=Job.Status.COMPLETED,
            job_type=job_type,
        )

    jobs = [
        job(obrien, 1, "Backflow preventer test", 1, inspection),
        job(maria, 2, "Water heater replacement", 2, install),
        job(smith_a, 3, "AC tune-up", 3, maintenance),
        job(smith_b, 4, "Furnace repair", 4, repair),
        job(dangelo, 5, "Pest control", 5, maintenance),
        job(lakeview, 6, "Drain cleaning, 4 units", 6, maintenance),
        job(chen, 7, "Office deep clean", 7, maintenance),
        job(patel, 8, "Sump pump install", 8, install),
        job(pta, 9, "Gym HVAC inspection", 9, inspection),
        job(ace, 10, "Leak repair", 10, repair),
    ]
    summary.jobs = len(jobs)
    cash, check, card, ach = (
        Payment.Method.CASH,
        Payment.Method.CHECK,
        Payment.Method.CARD,
        Payment.Method.ACH,
    )

    # Fully paid by one payment.
    inv = _invoice(obrien, jobs[0], "INV-1040", [("Backflow test", "Annual certification", "1", "185.00")], day=1)
    _pay(obrien, "185.00", [(inv, "185.00")], method=check, day=5, reference="10422")
    # Deposit, part payment and final payment: the classic three-step job. All three export together.
    inv = _invoice(
        maria,
        jobs[1],
        "INV-1041",
        [
            ("Water heater", "50 gal gas, installed", "1", "1450.00"),
            ("Labor", "Install, hours", "4", "95.00"),
            ("Permit", "City permit fee", "1", "75.00", False),  # a pass-through fee: not taxed
        ],
        tax="119.63",
        day=2,
    )
    _pay(maria, "500.00", [(inv, "500.00")], method=card, day=2, reference="ch_3Pdeposit")
    _pay(maria, "1000.00", [(inv, "1000.00")], method=card, day=6, reference="ch_3Ppart")
    _pay(maria, "524.63", [(inv, "524.63")], method=check, day=12, reference="2231")
    # Deposit only: held, INV-1042 still has most of it open.
    inv = _invoice(smith_a, jobs[2], "INV-1042", [("AC tune-up", "Two systems", "2", "149.00")], day=3)
    _pay(smith_a, "100.00", [(inv, "100.00")], method=cash, day=3)
    # Partially paid: held with $50.00 open.
    inv = _invoice(smith_b, jobs[3], "INV-1043", [("Furnace repair", "Igniter + labor", "1", "300.00")], day=4)
    _pay(smith_b, "250.00", [(inv, "250.00")], method=check, day=9, reference="551")
    # One payment split across two invoices of the same customer.
    inv_a = _invoice(dangelo, jobs[4], "INV-1044", [("Pest control", "Monthly service", "1", "120.00")], day=5)
    inv_b = _invoice(dangelo, None, "INV-1045", [("Pest control", "Follow-up visit", "1", "80.00")], day=6)
    _pay(dangelo, "200.00", [(inv_a, "120.00"), (inv_b, "80.00")], method=ach, day=14, reference="ACH-88120")
    # Overpaid: $10.00 arrives as unapplied credit.
    inv = _invoice(lakeview, jobs[5], "INV-1046", [("Drain cleaning", "Per unit", "4", "137.50")], day=6)
    _pay(lakeview, "560.00", [(inv, "550.00")], method=check, day=16, reference="77120")
    # Unpaid, issued.
    _invoice(chen, jobs[6], "INV-1047", [("Deep clean", "Office, 2,400 sq ft", "1", "640.00")], day=7)
    # Refunded before export: paid in full, then $40.00 refunded, so the invoice is open again and the payment held.
    inv = _invoice(patel, jobs[7], "INV-1048", [("Sump pump", "1/3 HP, installed", "1", "690.00")], day=8)
    refunded_before = _pay(patel, "690.00", [(inv, "690.00")], method=card, day=10, reference="ch_3Psump")
    services.refund_record(
        payment=refunded_before,
        amount="40.00",
        reason="Discount promised on the phone",
        refunded_on=_day(11),
        method=Refund.Method.CARD,
    )
    # Refunded after export: the office keyed this payment into QuickBooks by hand, then refunded part of it.
    inv = _invoice(pta, jobs[8], "INV-1049", [("HVAC inspection", "Gymnasium rooftop units", "3", "110.00")], day=9)
    keyed = _pay(pta, "330.00", [(inv, "330.00")], method=check, day=11, reference="3381")
    services.payment_export_status_transition(
        payment_id=keyed.pk,
        to_status=Payment.ExportStatus.EXPORTED_MANUALLY,
        note="Entered in QuickBooks by hand",
    )
    services.refund_record(
        payment=keyed,
        amount="110.00",
        reason="One unit was not inspected",
        refunded_on=_day(13),
        method=Refund.Method.CHECK,
    )
    # Void, never paid.
    voided = _invoice(ace, jobs[9], "INV-1050", [("Leak repair", "Quoted in error", "1", "210.00")], day=10)
    services.invoice_void(invoice=voided)
    # A draft still being written.
    _invoice(ace, jobs[9], "INV-1051", [("Leak repair", "Under sink", "1", "180.00")], issue=False)
    # Fully paid by two payments, cash and card.
    inv = _invoice(obrien, None, "INV-1052", [("Backflow repair", "Parts + labor", "1", "420.00")], day=12)
    _pay(obrien, "200.00", [(inv, "200.00")], method=cash, day=13)
    _pay(obrien, "220.00", [(inv, "220.00")], method=card, day=15, reference="ch_3Pbackflow")

    summary.invoices = Invoice.objects.count()
    summary.payments = Payment.objects.count()
    summary.refunds = 2
    summary.manual_items = 1
    return summary


SECOND_UNIT_NAME = "North Store"

_NORTH_CUSTOMERS = [
    # display name, company, e-mail, phone, street, city
    (
        "Harbor Point Condos",
        "Harbor Point Condominium Assn.",
        "board@harborpoint.example",
        "847-555-0211",
        "1 Harbor Pt",
        "Waukegan",
    ),
    ("Greta Lindqvist", "", "greta.lindqvist@example.com", "847-555-0234", "310 Sheridan Rd", "Highland Park"),
    (
        "Lake Forest Animal Clinic",
        "LF Animal Clinic PC",
        "office@lfanimal.example",
        "847-555-0256",
        "75 Deerpath",
        "Lake Forest",
    ),
]


@transaction.atomic
def seed_second_unit() -> DemoSummary:
    """A second business unit, "North Store", with a few records of its own (its own customers, and numbers no other
    unit uses): the header's unit switcher shows, and the unit is connected to its own QuickBooks company on the
    QuickBooks page, as the first one is. Paid in full, part-paid and unpaid, so its first export has something to
    send and something held."""
    unit = services.business_unit_create(name=SECOND_UNIT_NAME)
    summary = DemoSummary()
    customers = [
        services.customer_create(
            business_unit=unit,
            display_name=name,
            company_name=company,
            email=email,
            phone=phone,
            billing_line1=street,
            billing_city=city,
            billing_region="IL",
            billing_postal_code="600" + f"{40 + i:02d}",
        )
        for i, (name, company, email, phone, street, city) in enumerate(_NORTH_CUSTOMERS)
    ]
    harbor, greta, clinic = customers
    summary.customers = len(customers)
    repair, maintenance = (
        services.job_type_create(business_unit=unit, name=name) for name in ("Repair", "Maintenance")
    )
    jobs = [
        services.job_create(
            customer=customer,
            number=f"NS-JOB-{300 + n}",
            title=title,
            service_address=customer.billing_line1,
            scheduled_on=_day(day),
            completed_on=_day(day + 1),
            status=Job.Status.COMPLETED,
            job_type=job_type,
        )
        for n, (customer, title, day, job_type) in enumerate(
            [
                (harbor, "Boiler service, 3 buildings", 4, maintenance),
                (greta, "Gutter repair", 6, repair),
                (clinic, "Kennel drains", 8, maintenance),
            ],
            start=1,
        )
    ]
    summary.jobs = len(jobs)
    # Paid in full by one payment: exportable.
    inv = _invoice(harbor, jobs[0], "NS-3001", [("Boiler service", "Per building", "3", "260.00")], day=4)
    _pay(harbor, "780.00", [(inv, "780.00")], method=Payment.Method.ACH, day=9, reference="ACH-31007")
    # Part-paid: held with $95.00 open.
    inv = _invoice(greta, jobs[1], "NS-3002", [("Gutter repair", "Front and back, labor", "1", "295.00")], day=6)
    _pay(greta, "200.00", [(inv, "200.00")], method=Payment.Method.CARD, day=7, reference="ch_3Pgutter")
    # Unpaid, issued.
    _invoice(clinic, jobs[2], "NS-3003", [("Drain cleaning", "Kennel floor drains", "6", "85.00")], day=8)
    summary.invoices = Invoice.objects.filter(business_unit=unit).count()
    summary.payments = Payment.objects.filter(business_unit=unit).count()
    return summary


def ensure_demo_user(*, password: str):
    """The staff login printed by seed_demo: a superuser for the local demo only, a member of every business unit
    (a superuser sees them all anyway; membership keeps the demo right if someone makes the login plain staff)."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=DEMO_USERNAME,
        defaults={
            "is_staff": True,
            "is_superuser": True,
            "first_name": "Office",
            "last_name": "Admin",
            "email": "office@example.com",
        },
    )
    if created:
        user.set_password(password)
        user.save()
    user.business_units.add(*BusinessUnit.objects.all())
    return user, created


def seed_scale(
    *,
    payments: int,
    seed: int = 7,
    batch_size: int = 5000,
    paid_in_full_ratio: float = 0.85,
    customers: int = 0,
    business_unit: BusinessUnit | None = None,
) -> DemoSummary:
    """Bulk-insert `payments` payments, each on its own one-line invoice, for benchmarks, in `business_unit` (default:
    the only one).

    `paid_in_full_ratio` of them pay their invoice in full (exportable), the rest pay half of it (held). One customer
    per five payments unless `customers` says how many.
    """
    rng = random.Random(seed)  # deterministic
    start = (Invoice.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    n_customers = customers or max(1, payments // 5)
    unit = business_unit or services.business_unit_default()
    with transaction.atomic():
        customers = Customer.objects.bulk_create(
            [
                Customer(
                    business_unit=unit,
                    display_name=f"Scale Customer {start + i:06d}",
                    email=f"scale{start + i}@example.com" if i % 3 else "",
                    billing_city="Chicago",
                )
                for i in range(n_customers)
            ],
            batch_size=batch_size,
        )
        invoices, lines, totals = [], [], []
        for i in range(payments):
            total = Decimal(rng.randrange(5000, 250000)) / 100
            totals.append(total)
            invoices.append(
                Invoice(
                    customer=customers[i % n_customers],
                    business_unit=unit,
                    number=f"S-{start + i:08d}",
                    status=Invoice.Status.OPEN,
                    issued_on=_day(i % 60),
                    due_on=_day(i % 60 + 30),
                )
            )
        invoices = Invoice.objects.bulk_create(invoices, batch_size=batch_size)
        for invoice, total in zip(invoices, totals, strict=True):
            lines.append(
                InvoiceLine(
                    invoice=invoice,
                    service_name=rng.choice(_SERVICES),
                    quantity=Decimal("1.00"),
                    unit_price=total,
                    amount=total,
                )
            )
        InvoiceLine.objects.bulk_create(lines, batch_size=batch_size)

        methods = Payment.Method.values
        payment_rows, paid_in_full = [], []
        for i, (invoice, total) in enumerate(zip(invoices, totals, strict=True)):
            full = rng.random() < paid_in_full_ratio
            amount = total if full else (total / 2).quantize(Decimal("0.01"))
            paid_in_full.append(full)
            payment_rows.append(
                Payment(
                    customer=invoice.customer,
                    business_unit=unit,
                    amount=amount,
                    method=methods[i % len(methods)],
                    reference=f"R{start + i}",
                    received_on=_day(i % 60 + 3),
                )
            )
        payment_rows = Payment.objects.bulk_create(payment_rows, batch_size=batch_size)
        PaymentApplication.objects.bulk_create(
            [
                PaymentApplication(payment=p, invoice=inv, amount=p.amount)
                for p, inv in zip(payment_rows, invoices, strict=True)
            ],
            batch_size=batch_size,
        )
        paid_ids = [inv.pk for inv, full in zip(invoices, paid_in_full, strict=True) if full]
        for chunk_start in range(0, len(paid_ids), 900):  # SQLite caps bound parameters per statement
            Invoice.objects.filter(pk__in=paid_ids[chunk_start : chunk_start + 900]).update(status=Invoice.Status.PAID)
    return DemoSummary(customers=n_customers, invoices=payments, payments=payments)


_SERVICES = [
    "Labor",
    "Drain cleaning",
    "AC tune-up",
    "Pest control",
    "Deep clean",
    "Water heater",
    "Service call",
]
