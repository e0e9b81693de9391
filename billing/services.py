"""Every write to the billing domain. Each service validates first and changes nothing when it refuses.

Row locks keep money consistent when people and API clients act at once: a service that changes what is paid on
an invoice locks the payment row first (if it exists), then the invoice rows in id order, so two payments recorded
at the same moment can never over-apply an invoice, and no two services wait on each other in a circle.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from fieldsync.exceptions import ApplicationError, ConflictError

from . import hooks
from .models import (
    BusinessUnit,
    Customer,
    Invoice,
    InvoiceCredit,
    InvoiceLine,
    Job,
    JobType,
    ManualHandlingItem,
    Payment,
    PaymentApplication,
    PaymentExportTransition,
    Refund,
    TaxRate,
)
from .money import MAX_AMOUNT, MAX_QUANTITY, ZERO, check_currency, format_money, parse_amount, quantize
from .selectors import (
    ExportReadiness,
    InvoiceState,
    invoice_balances,
    invoice_get_with_balances,
    payment_export_readiness_map,
    payment_with_amounts,
)

ExportStatus = Payment.ExportStatus

# The only moves a payment's export status may make. The export engine drives them; people can mark a payment as
# exported by hand or exclude it. EXPORTED and EXPORTED_MANUALLY are final: nothing is ever exported twice.
EXPORT_TRANSITIONS: dict[str, frozenset[str]] = {
    ExportStatus.NOT_EXPORTED: frozenset({ExportStatus.QUEUED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.EXCLUDED}),
    # QUEUED -> NOT_EXPORTED: found held when the worker picked it up.
    ExportStatus.QUEUED: frozenset({ExportStatus.EXPORTING, ExportStatus.NOT_EXPORTED, ExportStatus.FAILED}),
    # EXPORTING -> QUEUED: a retryable failure waiting for its next attempt, or a stale claim recovered.
    # EXPORTING -> ON_HOLD: QuickBooks' invoice does not match ours, so none of its payments is posted.
    ExportStatus.EXPORTING: frozenset(
        {ExportStatus.EXPORTED, ExportStatus.FAILED, ExportStatus.QUEUED, ExportStatus.ON_HOLD}
    ),
    # ON_HOLD -> NOT_EXPORTED: the hold was released ("Check again" found it fixed, or the invoice was unlinked).
    ExportStatus.ON_HOLD: frozenset({ExportStatus.NOT_EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.EXCLUDED}),
    ExportStatus.FAILED: frozenset({ExportStatus.QUEUED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.EXCLUDED}),
    ExportStatus.EXCLUDED: frozenset({ExportStatus.NOT_EXPORTED}),
    # (EXPORTED -> NOT_EXPORTED happens only in payment_export_undone, after QuickBooks voided the payment.)
    ExportStatus.EXPORTED: frozenset(),
    ExportStatus.EXPORTED_MANUALLY: frozenset(),
    # Keyed in QuickBooks and brought in (payment_record_from_quickbooks): born there, never exported from here.
    ExportStatus.IN_QUICKBOOKS: frozenset(),
}

# A refund of a payment in one of these states may already be in QuickBooks: a person must handle it there.
EXPORT_STATUSES_IN_QUICKBOOKS = frozenset(
    {ExportStatus.EXPORTING, ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.IN_QUICKBOOKS}
)
# Applying a payment changes what QuickBooks would receive, so only payments not yet on their way may change.
EXPORT_STATUSES_EDITABLE = frozenset(
    {ExportStatus.NOT_EXPORTED, ExportStatus.FAILED, ExportStatus.EXCLUDED, ExportStatus.ON_HOLD}
)


def _full_clean(instance, **options) -> None:
    try:
        instance.full_clean(**options)
    except ValidationError as exc:
        raise ApplicationError(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()),
            code="invalid",
            extra=exc.message_dict,
        ) from None


# --- Business units -----------------------------------------------------------------------------------------------

# The unit migration 0006 puts existing data in; also made again when a database emptied after migrating has none.
DEFAULT_UNIT_NAME, DEFAULT_UNIT_SLUG = "Main", "main"


def business_unit_create(*, name: str, slug: str = "", members: Iterable = ()) -> BusinessUnit:
    """A new business unit (its slug: `slug`, else made from the name) with its `members` (staff users). Its slug is
    how API clients and commands name it, so it is fixed once created. Raises ApplicationError (invalid) for a name
    or slug taken or empty."""
    name = name.strip()
    unit = BusinessUnit(name=name, slug=slug.strip() or slugify(name))
    _full_clean(unit)
    with transaction.atomic():
        unit.save()
        unit.members.set(members)
    return unit


def business_unit_update(*, business_unit: BusinessUnit, name: str, members: Iterable) -> BusinessUnit:
    """Rename a unit and set who its members are (the staff who see and act on its records). The slug stays."""
    business_unit.name = name.strip()
    _full_clean(business_unit)
    with transaction.atomic():
        business_unit.save(update_fields=["name"])
        business_unit.members.set(members)
    return business_unit


def business_unit_default() -> BusinessUnit:
    """The unit a customer goes into when nobody names one: the only unit (made, as "Main", if there is none yet).

    Raises ApplicationError(code="business_unit_required") when there are several: then the caller must say which."""
    units = list(BusinessUnit.objects.order_by("pk")[:2])
    if len(units) == 1:
        return units[0]
    if units:
        raise ApplicationError(
            "This installation has several business units; say which one this is for.",
            code="business_unit_required",
        )
    unit, _ = BusinessUnit.objects.get_or_create(slug=DEFAULT_UNIT_SLUG, defaults={"name": DEFAULT_UNIT_NAME})
    return unit


# --- Customers and jobs -------------------------------------------------------------------------------------------


def customer_create(
    *,
    business_unit: BusinessUnit | None = None,
    display_name: str,
    company_name: str = "",
    email: str = "",
    phone: str = "",
    billing_line1: str = "",
    billing_line2: str = "",
    billing_city: str = "",
    billing_region: str = "",
    billing_postal_code: str = "",
    billing_country: str = "US",
) -> Customer:
    """Create a customer in `business_unit` (default: the only unit, see business_unit_default)."""
    customer = Customer(
        business_unit=business_unit or business_unit_default(),
        display_name=display_name.strip(),
        company_name=company_name.strip(),
        email=email.strip().lower(),
        phone=phone.strip(),
        billing_line1=billing_line1,
        billing_line2=billing_line2,
        billing_city=billing_city,
        billing_region=billing_region,
        billing_postal_code=billing_postal_code,
        billing_country=billing_country,
    )
    _full_clean(customer)
    customer.save()
    return customer


# The fields a person may change on a customer; the QuickBooks customer is not updated (exports create, never edit).
CUSTOMER_EDITABLE_FIELDS = (
    "display_name",
    "company_name",
    "email",
    "phone",
    "billing_line1",
    "billing_line2",
    "billing_city",
    "billing_region",
    "billing_postal_code",
    "billing_country",
)


@transaction.atomic
def customer_update(*, customer: Customer, notify: bool = True, **changes) -> Customer:
    """Change a customer's name, contact details or billing address. Refuses unknown fields; validates first.
    Listeners hear of the change after the commit (the export app sends it to QuickBooks) unless `notify` is False:
    the change came from QuickBooks itself, so there is nothing to send back."""
    unknown = set(changes) - set(CUSTOMER_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These customer fields cannot change: {', '.join(sorted(unknown))}.")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    for field, value in changes.items():
        value = (value or "").strip()
        setattr(customer, field, value.lower() if field == "email" else value)
    _full_clean(customer)
    customer.save(update_fields=list(changes) or None)
    if changes and notify:
        hooks.customer_changed_notify(customer_id=customer.pk)
    return customer


def job_type_create(*, business_unit: BusinessUnit, name: str, active: bool = True) -> JobType:
    """A job type ("Repair", "Install") of `business_unit`. Raises ApplicationError (invalid) for an empty name or
    one the unit already has, whatever its case."""
    job_type = JobType(business_unit=business_unit, name=" ".join(name.split()), active=active)
    _full_clean(job_type)
    job_type.save()
    return job_type


@transaction.atomic
def job_type_update(*, job_type: JobType, name: str, active: bool) -> JobType:
    """Rename a job type or take it out of use (active=False: jobs keep it, new jobs cannot take it). Its unit is
    fixed. Raises ApplicationError (invalid) as job_type_create."""
    job_type = JobType.objects.select_for_update().get(pk=job_type.pk)
    job_type.name, job_type.active = " ".join(name.split()), active
    _full_clean(job_type)
    job_type.save(update_fields=["name", "active"])
    return job_type


def _check_job_type_offered(job: Job, job_type: JobType | None) -> None:
    """A job takes only an active type of its own unit (another unit's is refused as an unknown one)."""
    if job_type is None:
        return
    if job_type.business_unit_id != job.business_unit_id:
        raise ApplicationError(
            f"This customer's business unit has no job type {job_type.name}.",
            code="does_not_exist",
            extra={"job_type": ["This business unit has no such job type."]},
        )
    if not job_type.active:
        raise ApplicationError(
            f"The job type {job_type.name} is no longer in use; choose another.",
            code="inactive",
            extra={"job_type": [f"The job type {job_type.name} is no longer in use; choose another."]},
        )


def job_create(
    *,
    customer: Customer,
    number: str,
    title: str,
    service_address: str = "",
    scheduled_on: date | None = None,
    completed_on: date | None = None,
    status: str = Job.Status.SCHEDULED,
    job_type: JobType | None = None,
) -> Job:
    """A job for `customer`, in the customer's unit; `job_type` must be an active type of that unit. Raises
    ApplicationError (invalid) and saves nothing otherwise."""
    job = Job(
        customer=customer,
        business_unit_id=customer.business_unit_id,  # always the customer's unit
        number=number.strip(),
        title=title.strip(),
        service_address=service_address,
        scheduled_on=scheduled_on,
        completed_on=completed_on,
        status=status,
        job_type=job_type,
    )
    _check_job_type_offered(job, job_type)
    # The type was checked as the object in hand (types are never deleted): no second look-up of its row.
    _full_clean(job, exclude=["job_type"])
    job.save()
    return job


# What may change on a job once it exists (its number and customer are fixed: invoices and QuickBooks follow them).
JOB_EDITABLE_FIELDS = ("title", "service_address", "scheduled_on", "completed_on", "status", "job_type")


@transaction.atomic
def job_update(*, job: Job, **changes) -> Job:
    """Change a job's title, address, dates, status or job type. A new job type must be an active type of the job's
    unit (the type it already has may stay even when no longer in use). Invoices already in QuickBooks keep the class
    and location they were sent with. Raises ApplicationError and changes nothing on refusal."""
    unknown = set(changes) - set(JOB_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These job fields cannot change: {', '.join(sorted(unknown))}.")
    job = Job.objects.select_for_update().get(pk=job.pk)
    if "job_type" in changes and getattr(changes["job_type"], "pk", None) != job.job_type_id:
        _check_job_type_offered(job, changes["job_type"])
    for field, value in changes.items():
        setattr(job, field, value.strip() if isinstance(value, str) and field == "title" else value)
    _full_clean(job)
    job.save(update_fields=list(changes) or None)
    return job


# --- Invoices -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    service_name: str
    unit_price: Decimal | str
    quantity: Decimal | str = "1"
    description: str = ""
    taxable: bool = True


def tax_rate_create(*, name: str, percentage: Decimal | str) -> TaxRate:
    try:
        value = Decimal(str(percentage))
    except ArithmeticError:
        value = None
    if isinstance(percentage, float) or value is None or not value.is_finite() or not (0 <= value <= 100):
        raise ApplicationError(
            f'A tax rate is a percentage from 0 to 100 written as text (e.g. "10.25"), not {percentage!r}.',
            code="invalid_tax_rate",
        )
    rate = TaxRate(name=name.strip(), percentage=value)
    _full_clean(rate)
    rate.save()
    return rate


def invoice_tax_compute(*, lines: Iterable[InvoiceLine], rate: TaxRate) -> Decimal:
    """The tax of an invoice at `rate`: each taxable line's amount times the percentage, rounded half up to the cent,
    then added up. Line by line, not on the subtotal, because QuickBooks Online computes tax that way ("QuickBooks
    Online will always calculate line-by-line", Intuit staff on QuickBooks Community; docs/quickbooks_sales_tax.md
    [N]) and its total must equal ours to the cent; outside the US it takes no override."""
    return sum((quantize(line.amount * rate.percentage / Decimal(100)) for line in lines if line.taxable), ZERO)


def _invoice_tax_refresh(invoice: Invoice) -> None:
    if invoice.tax_rate_id is None:
        return
    invoice.sales_tax = invoice_tax_compute(lines=invoice.lines.all(), rate=invoice.tax_rate)
    invoice.save(update_fields=["sales_tax"])


@transaction.atomic
def invoice_create(
    *,
    customer: Customer,
    number: str,
    lines: Iterable[LineInput] = (),
    job: Job | None = None,
    issued_on: date | None = None,
    due_on: date | None = None,
    currency: str | None = None,
    sales_tax: Decimal | str = "0.00",
    tax_rate: TaxRate | None = None,
    memo: str = "",
) -> Invoice:
    """Create a draft invoice with its lines. Refuses another customer's job, a wrong currency, bad amounts.

    Tax: either `tax_rate` (the tax is computed from the taxable lines, see invoice_tax_compute) or a `sales_tax`
    amount (as before rates existed), not both."""
    if job is not None and job.customer_id != customer.pk:
        raise ApplicationError(f"Job {job.number} belongs to {job.customer}, not to {customer}.", code="wrong_customer")
    if due_on and issued_on and due_on < issued_on:
        raise ApplicationError("The due date cannot be before the issue date.", code="invalid_dates")
    if tax_rate is not None and parse_amount(sales_tax, field="sales_tax", allow_zero=True) != ZERO:
        raise ApplicationError(
            f"Give either a tax rate or a sales tax amount, not both: with {tax_rate.name} the tax is computed from "
            "the taxable lines.",
            code="tax_rate_and_amount",
        )
    if tax_rate is not None and not tax_rate.active:
        raise ApplicationError(f"The tax rate {tax_rate.name} is no longer in use.", code="tax_rate_inactive")
    invoice = Invoice(
        customer=customer,
        business_unit_id=customer.business_unit_id,  # always the customer's unit
        job=job,
        number=number.strip(),
        issued_on=issued_on,
        due_on=due_on,
        currency=check_currency(currency),
        sales_tax=parse_amount(sales_tax, field="sales_tax", allow_zero=True),
        tax_rate=tax_rate,
        memo=memo,
        status=Invoice.Status.DRAFT,
    )
    _full_clean(invoice)
    invoice.save()
    for line in lines:
        invoice_line_add(invoice=invoice, **line.__dict__)
    return invoice


@transaction.atomic
def invoice_line_add(
    *, invoice: Invoice, service_name: str, unit_price, quantity="1", description: str = "", taxable: bool = True
) -> InvoiceLine:
    if invoice.status != Invoice.Status.DRAFT:
        raise ApplicationError(
            f"{invoice.number} is {invoice.get_status_display().lower()}; lines are added one by one only to a draft. "
            "Change an issued invoice as a whole (“Change invoice”, or PATCH on the invoice).",
            code="invoice_not_draft",
        )
    quantity = parse_amount(quantity, field="quantity", maximum=MAX_QUANTITY)
    unit_price = parse_amount(unit_price, field="unit_price", allow_zero=True)
    amount = quantize(quantity * unit_price)
    # The line and the invoice's total must fit a money column (and QuickBooks' amounts): refuse here, with the
    # field at fault, rather than fail in the database or in a response after the write.
    if amount > MAX_AMOUNT:
        message = f"{service_name}: {quantity} × {format_money(unit_price)} is more than {format_money(MAX_AMOUNT)}."
        raise ApplicationError(message, code="too_large", extra={"lines": [message]})
    total = invoice_get_with_balances(invoice_id=invoice.pk).total + amount
    if total > MAX_AMOUNT:
        message = (
            f"{invoice.number} would total {format_money(total)}, more than {format_money(MAX_AMOUNT)}, the most one "
            "invoice can hold; split the work into several invoices."
        )
        raise ApplicationError(message, code="too_large", extra={"lines": [message]})
    line = InvoiceLine(
        invoice=invoice,
        position=invoice.lines.count(),
        service_name=service_name.strip(),
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        amount=amount,
        taxable=bool(taxable),
    )
    _full_clean(line)
    line.save()
    _invoice_tax_refresh(invoice)
    return line


def _lock_invoices(invoice_ids: Iterable[int]) -> dict[int, Invoice]:
    """Lock invoice rows in id order (one order everywhere: no deadlocks)."""
    locked = Invoice.objects.select_for_update().filter(pk__in=sorted(set(invoice_ids))).order_by("pk")
    return {invoice.pk: invoice for invoice in locked}


@transaction.atomic
def invoice_issue(*, invoice: Invoice, issued_on: date | None = None, due_on: date | None = None) -> Invoice:
    """Draft → open. The invoice needs at least one line. A $0.00 invoice (warranty work, a free call-out) has nothing
    to pay: it is settled at issue (PAID at once, and the invoice_paid listeners run on commit), and goes to
    QuickBooks on its own, invoice-only."""
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status != Invoice.Status.DRAFT:
        raise ConflictError(
            f"{invoice.number} is already {invoice.get_status_display().lower()}.", code="invoice_not_draft"
        )
    if not invoice.lines.exists():
        raise ApplicationError(f"{invoice.number} has no lines; add what was sold first.", code="invoice_empty")
    invoice.issued_on = issued_on or invoice.issued_on or timezone.localdate()
    invoice.due_on = due_on or invoice.due_on
    if invoice.due_on and invoice.due_on < invoice.issued_on:
        raise ApplicationError("The due date cannot be before the issue date.", code="invalid_dates")
    invoice.status = Invoice.Status.OPEN
    invoice.save(update_fields=["issued_on", "due_on", "status"])
    _invoice_sync_paid_status(invoice)  # a $0.00 invoice is settled at once
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice) -> Invoice:
    """Void an invoice nobody has paid. Payments applied to it must be refunded first: nothing is deleted."""
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status == Invoice.Status.VOID:
        raise ConflictError(f"{invoice.number} is already void.", code="invoice_void")
    balances = invoice_get_with_balances(invoice_id=invoice.pk)
    if balances.amount_paid > 0:
        raise ApplicationError(
            f"{invoice.number} has {format_money(balances.amount_paid, invoice.currency)} paid on it; "
            "refund those payments before voiding it.",
            code="invoice_has_payments",
        )
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = timezone.now()
    invoice.save(update_fields=["status", "voided_at"])
    hooks.invoice_voided_notify(invoice_id=invoice.pk)
    return invoice


@dataclass(frozen=True)
class LineEdit(LineInput):
    """A line of invoice_edit's new list: `line_id` names an existing line of the invoice to change; None adds one."""

    line_id: int | None = None


# invoice_edit's "leave the tax rate as it is" (None means "no rate: the tax is an amount").
UNCHANGED = object()


def _line_snapshot(line: InvoiceLine) -> tuple:
    return (line.pk, line.service_name, line.description, line.quantity, line.unit_price, line.amount, line.taxable)


def _planned_lines(invoice: Invoice, edits: list[LineEdit], existing: dict[int, InvoiceLine]) -> list[InvoiceLine]:
    """The invoice's new lines, validated, not saved: existing rows changed in place (their ids kept), new ones
    unsaved, in the order given."""
    if not edits:
        raise ApplicationError(
            f"{invoice.number} needs at least one line; to cancel it, void it instead.", code="invoice_empty"
        )
    ids = [edit.line_id for edit in edits if edit.line_id is not None]
    if unknown := sorted(set(ids) - existing.keys(), key=str):
        raise ApplicationError(
            f"{invoice.number} has no line {', '.join(map(str, unknown))}; reload the invoice and try again.",
            code="unknown_line",
        )
    if len(ids) != len(set(ids)):
        raise ApplicationError("Each existing line may appear only once.", code="duplicate_line")
    planned = []
    for position, edit in enumerate(edits):
        quantity = parse_amount(edit.quantity, field="quantity", maximum=MAX_QUANTITY)
        unit_price = parse_amount(edit.unit_price, field="unit_price", allow_zero=True)
        amount = quantize(quantity * unit_price)
        if amount > MAX_AMOUNT:
            message = (
                f"{edit.service_name}: {quantity} × {format_money(unit_price)} is more than {format_money(MAX_AMOUNT)}."
            )
            raise ApplicationError(message, code="too_large", extra={"lines": [message]})
        line = existing[edit.line_id] if edit.line_id is not None else InvoiceLine(invoice=invoice)
        line.position = position
        line.service_name = edit.service_name.strip()
        line.description = (edit.description or "").strip()
        line.quantity, line.unit_price, line.amount = quantity, unit_price, amount
        line.taxable = bool(edit.taxable)
        # The invoice is the locked one and the check constraints are what parse_amount just enforced (and the
        # database enforces them again): validating the fields alone keeps an edit a constant number of queries.
        _full_clean(line, exclude=["invoice"], validate_constraints=False)
        planned.append(line)
    return planned


@transaction.atomic
def invoice_edit(
    *,
    invoice: Invoice,
    lines: Iterable[LineEdit] | None = None,
    tax_rate: TaxRate | None | object = UNCHANGED,
    sales_tax: Decimal | str | None = None,
    issued_on: date | None = None,
    due_on: date | None = None,
) -> Invoice:
    """Change an invoice's lines, tax or dates — a draft or an issued one (never a void one).

    `lines`, when given, is the whole new list: a LineEdit with `line_id` changes that line, one without adds a line,
    a line left out is removed. `tax_rate` a rate (the tax is computed from the taxable lines) or None (the tax is
    the `sales_tax` amount); `sales_tax` alone changes the amount of an invoice without a rate. A date left None keeps
    the date it has (a date is never cleared: QuickBooks' copy is never blanked either).

    Refuses, changing nothing: a new total below what is already paid and credited on the invoice (refund first), an
    issued invoice totalling zero, a due date before the issue date, a rate together with an amount, an inactive rate,
    lines of another invoice. Side effects on an issued invoice that changed: `changed_at` is set, OPEN <-> PAID
    follows the new balance, and listeners hear of it after the commit (hooks.invoice_changed_notify: the export app
    sends the change to QuickBooks)."""
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status == Invoice.Status.VOID:
        raise ConflictError(f"{invoice.number} is void; a void invoice cannot change.", code="invoice_void")
    balances = invoice_get_with_balances(invoice_id=invoice.pk)
    existing = {line.pk: line for line in invoice.lines.all()}
    before = (
        [_line_snapshot(line) for line in existing.values()],
        invoice.tax_rate_id,
        invoice.sales_tax,
        invoice.issued_on,
        invoice.due_on,
    )

    new_issued_on = issued_on or invoice.issued_on
    new_due_on = due_on or invoice.due_on
    if new_due_on and new_issued_on and new_due_on < new_issued_on:
        raise ApplicationError("The due date cannot be before the issue date.", code="invalid_dates")

    rate = invoice.tax_rate if tax_rate is UNCHANGED else tax_rate
    if rate is not None and rate.pk != invoice.tax_rate_id and not rate.active:
        raise ApplicationError(f"The tax rate {rate.name} is no longer in use.", code="tax_rate_inactive")
    if rate is not None and sales_tax is not None:
        raise ApplicationError(
            f"Give either a tax rate or a sales tax amount, not both: with {rate.name} the tax is computed from the "
            "taxable lines.",
            code="tax_rate_and_amount",
        )

    planned = _planned_lines(invoice, list(lines), existing) if lines is not None else list(existing.values())
    if rate is not None:
        tax = invoice_tax_compute(lines=planned, rate=rate)
    elif sales_tax is not None:
        tax = parse_amount(sales_tax, field="sales_tax", allow_zero=True)
    else:
        tax = invoice.sales_tax
    total = sum((line.amount for line in planned), ZERO) + tax
    if total > MAX_AMOUNT:
        message = (
            f"{invoice.number} would total {format_money(total)}, more than {format_money(MAX_AMOUNT)}, the most one "
            "invoice can hold; split the work into several invoices."
        )
        raise ApplicationError(message, code="too_large", extra={"lines": [message]})
    settled = balances.amount_paid + balances.credited
    if total < settled:
        what = format_money(balances.amount_paid, invoice.currency) + " paid"
        if balances.credited:
            what += f" and {format_money(balances.credited, invoice.currency)} credited"
        raise ApplicationError(
            f"{invoice.number} would total {format_money(total, invoice.currency)}, less than the {what} on it; "
            f"nothing was changed. Keep the total at {format_money(settled, invoice.currency)} or more, or refund "
            "the difference first.",
            code="below_paid",
            extra={"total": f"{total:.2f}", "settled": f"{settled:.2f}"},
        )
    issued = invoice.status != Invoice.Status.DRAFT
    if issued and total <= 0:
        raise ApplicationError(
            f"{invoice.number} would total {format_money(total, invoice.currency)}; an issued invoice bills something. "
            "Void it instead.",
            code="invoice_zero",
        )

    after = (
        [_line_snapshot(line) for line in planned],
        rate.pk if rate is not None else None,
        tax,
        new_issued_on,
        new_due_on,
    )
    if after == before:
        return invoice  # nothing to change, nothing to tell QuickBooks

    kept = [line for line in planned if line.pk is not None]
    InvoiceLine.objects.filter(invoice=invoice).exclude(pk__in=[line.pk for line in kept]).delete()
    InvoiceLine.objects.bulk_update(
        kept, ["position", "service_name", "description", "quantity", "unit_price", "amount", "taxable"]
    )
    InvoiceLine.objects.bulk_create([line for line in planned if line.pk is None])
    invoice.tax_rate, invoice.sales_tax = rate, tax
    invoice.issued_on, invoice.due_on = new_issued_on, new_due_on
    fields = ["tax_rate", "sales_tax", "issued_on", "due_on"]
    if issued:
        invoice.changed_at = timezone.now()
        fields.append("changed_at")
    _full_clean(invoice, exclude=["business_unit"])  # an edit never moves it to another unit (clean() checks it)
    invoice.save(update_fields=fields)
    if issued:
        _invoice_sync_paid_status(invoice)
        hooks.invoice_changed_notify(invoice_id=invoice.pk)
    return invoice


def _invoice_sync_paid_status(invoice: Invoice, *, open_balance: Decimal | None = None) -> None:
    """OPEN <-> PAID follows the balance. The caller holds the invoice's row lock; a caller that just computed the
    open balance under that lock passes it (one query less)."""
    if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.PAID):
        return
    if open_balance is None:
        open_balance = invoice_balances(invoice_id=invoice.pk).open_balance
    status = Invoice.Status.PAID if open_balance <= 0 else Invoice.Status.OPEN
    if status != invoice.status:
        invoice.status = status
        invoice.save(update_fields=["status"])
        if status == Invoice.Status.PAID:
            hooks.invoice_paid_notify(invoice_id=invoice.pk)


# --- Payments -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplicationInput:
    invoice: Invoice
    amount: Decimal | str


def _apply(
    *, payment: Payment, invoice: Invoice, amount: Decimal, available: Decimal, new_payment: bool = False
) -> PaymentApplication:
    """Apply `amount` of a locked payment to a locked invoice. `available` is the payment's unapplied credit;
    `new_payment`: the payment was created in this transaction, so it has no application to add to yet."""
    if invoice.customer_id != payment.customer_id:
        raise ApplicationError(
            f"{invoice.number} belongs to another customer ({invoice.customer}); a payment from "
            f"{payment.customer} can only pay that customer's invoices.",
            code="wrong_customer",
        )
    if invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
        raise ApplicationError(
            f"{invoice.number} is {invoice.get_status_display().lower()}; payments apply only to issued invoices.",
            code="invoice_not_open",
        )
    if invoice.currency != payment.currency:
        raise ApplicationError(f"{invoice.number} is in {invoice.currency}.", code="currency_mismatch")
    balances = invoice_balances(invoice_id=invoice.pk)
    open_balance = balances.open_balance
    if amount > open_balance:
        raise ApplicationError(
            f"{format_money(amount, invoice.currency)} is more than the {format_money(open_balance, invoice.currency)} "
            f"open on {invoice.number}.",
            code="over_application",
            extra={"invoice": invoice.number, "open_balance": f"{open_balance:.2f}"},
        )
    if amount > available:
        raise ApplicationError(
            f"{format_money(amount, payment.currency)} is more than the {format_money(available, payment.currency)} "
            "of this payment left to apply.",
            code="over_application",
            extra={"unapplied": f"{available:.2f}"},
        )
    if new_payment:
        application = PaymentApplication.objects.create(payment=payment, invoice=invoice, amount=amount)
    else:
        application, created = PaymentApplication.objects.get_or_create(
            payment=payment, invoice=invoice, defaults={"amount": amount}
        )
        if not created:
            application.amount += amount
            application.save(update_fields=["amount"])
    # Under the invoice's row lock nothing else changed its balance: no need to read it again.
    _invoice_sync_paid_status(invoice, open_balance=open_balance - amount)
    # The invoice as the fully-paid rule sees it now, for a caller answering without a read (payment_record).
    application.invoice_state = InvoiceState(
        invoice_id=invoice.pk,
        number=invoice.number,
        status=invoice.status,
        total=balances.total,
        amount_paid=balances.amount_paid + amount,
        open_balance=open_balance - amount,
        currency=invoice.currency,
        reversal_pending=balances.reversal_pending,
    )
    return application


@transaction.atomic
def payment_record(
    *,
    customer: Customer,
    amount: Decimal | str,
    method: str,
    received_on: date,
    reference: str = "",
    currency: str | None = None,
    memo: str = "",
    applications: Iterable[ApplicationInput] = (),
) -> Payment:
    """Record money received and apply it to invoices, all or nothing. What is not applied is unapplied credit."""
    return _payment_record(
        customer=customer,
        amount=amount,
        method=method,
        received_on=received_on,
        reference=reference,
        currency=currency,
        memo=memo,
        applications=applications,
    )


@transaction.atomic
def payment_record_from_quickbooks(
    *,
    customer: Customer,
    amount: Decimal | str,
    method: str,
    received_on: date,
    quickbooks_id: str,
    reference: str = "",
    currency: str | None = None,
    memo: str = "",
    applications: Iterable[ApplicationInput] = (),
    user=None,
) -> Payment:
    """A payment keyed in QuickBooks against invoices FieldSync exported, brought in: recorded with the same checks
    as payment_record (all or nothing; never more than an invoice's open balance, never on a void invoice or in
    another currency: ApplicationError, nothing changes), origin QUICKBOOKS and export status IN_QUICKBOOKS from the
    start (it is in QuickBooks already, so nothing ever exports it), `quickbooks_id` as its export reference, and a
    history row saying where it came from. The caller keeps it from being brought in twice (its mapping table)."""
    payment = _payment_record(
        customer=customer,
        amount=amount,
        method=method,
        received_on=received_on,
        reference=reference,
        currency=currency,
        memo=memo,
        applications=applications,
        origin=Payment.Origin.QUICKBOOKS,
        export_reference=quickbooks_id,
    )
    PaymentExportTransition.objects.create(
        payment=payment,
        from_status=ExportStatus.IN_QUICKBOOKS,
        to_status=ExportStatus.IN_QUICKBOOKS,
        note=f"Recorded in QuickBooks (payment {quickbooks_id}) and brought into FieldSync"[:500],
        by=user,
    )
    return payment


def _payment_record(
    *,
    customer: Customer,
    amount: Decimal | str,
    method: str,
    received_on: date,
    reference: str,
    currency: str | None,
    memo: str,
    applications: Iterable[ApplicationInput],
    origin: str = Payment.Origin.FIELDSYNC,
    export_reference: str = "",
) -> Payment:
    applications = list(applications)
    if method not in Payment.Method.values:
        raise ApplicationError(
            f"Unknown payment method {method!r}; use one of {', '.join(Payment.Method.values)}.",
            code="invalid_method",
        )
    amount = parse_amount(amount)
    parsed = [(item.invoice, parse_amount(item.amount, field="application amount")) for item in applications]
    invoice_numbers = [invoice.number for invoice, _ in parsed]
    if len(set(invoice_numbers)) != len(invoice_numbers):
        raise ApplicationError("An invoice appears twice in the applications.", code="duplicate_invoice")
    total_applied = sum((value for _, value in parsed), ZERO)
    if total_applied > amount:
        raise ApplicationError(
            f"The applications add up to {format_money(total_applied)}, more than the payment of "
            f"{format_money(amount)}.",
            code="over_application",
        )
    payment = Payment(
        customer=customer,
        business_unit_id=customer.business_unit_id,  # always the customer's unit
        amount=amount,
        currency=check_currency(currency),
        method=method,
        reference=reference.strip(),
        received_on=received_on,
        memo=memo,
        origin=origin,
        export_status=ExportStatus.IN_QUICKBOOKS if origin == Payment.Origin.QUICKBOOKS else ExportStatus.NOT_EXPORTED,
        export_status_changed_at=timezone.now() if origin == Payment.Origin.QUICKBOOKS else None,
        export_reference=export_reference,
    )
    # Validated in Python only: the customer is a saved row (save() refuses an unsaved one), the unit is the
    # customer's (clean() checks it), and the amount's check constraint (positive) is parse_amount's rule above; the
    # database enforces them again. Three queries less.
    _full_clean(payment, exclude=["customer", "business_unit"], validate_constraints=False)
    payment.save()
    locked = _lock_invoices(invoice.pk for invoice, _ in parsed)
    available = amount
    recorded = []
    for invoice, value in parsed:
        recorded.append(
            _apply(payment=payment, invoice=locked[invoice.pk], amount=value, available=available, new_payment=True)
        )
        available -= value
    # What a caller would otherwise read back (the answer to POST /api/v1/payments/), known here under the locks:
    # the applications in the order they were created (their ids') and the fully-paid rule's Python twin over the
    # invoices as they are now (ordered by number, as payment_export_readiness_map orders them). No refund exists yet.
    payment.applications_recorded = recorded
    payment.export_readiness = ExportReadiness(
        payment_id=payment.pk,
        invoices=tuple(sorted((item.invoice_state for item in recorded), key=lambda state: state.number)),
    )
    return payment


def _lock_payment(payment: Payment) -> Payment:
    return Payment.objects.select_for_update().select_related("customer").get(pk=payment.pk)


@transaction.atomic
def payment_apply(*, payment: Payment, invoice: Invoice, amount: Decimal | str) -> PaymentApplication:
    """Apply part of a payment's unapplied credit to an invoice of the same customer."""
    amount = parse_amount(amount)
    payment = _lock_payment(payment)
    if payment.export_status not in EXPORT_STATUSES_EDITABLE:
        raise ConflictError(
            f"Payment #{payment.pk} is {payment.get_export_status_display().lower()}; "
            "its applications can no longer change here.",
            code="payment_in_export",
        )
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    available = payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get().unapplied_credit
    return _apply(payment=payment, invoice=invoice, amount=amount, available=available)


# --- Refunds ------------------------------------------------------------------------------------------------------

RefundKind = Refund.Kind
RefundHandling = Refund.Handling
# Intuit's help articles for each hand-over (linked from the manual-handling page, quoted in docs/refunds.md).
QUICKBOOKS_HELP = {
    RefundKind.NO_LONGER_OWED: "https://quickbooks.intuit.com/learn-support/en-us/help-article/customer-refunds-credits/"
    "record-customer-refund-quickbooks-online/L5PbCkJk8_US_en_US",
    RefundKind.REVERSAL: "https://quickbooks.intuit.com/learn-support/en-us/receive-payments/"
    "how-to-enter-a-returned-or-bounced-check-using-write-check/01/186977",
    RefundKind.UNAPPLIED_CREDIT: "https://quickbooks.intuit.com/learn-support/en-us/help-article/"
    "customer-refunds-credits/handle-customer-credit-overpayment-quickbooks/L1Z4OZkKB_US_en_US",
}


def _refund_source(*, payment: Payment, kind: str, invoice: Invoice | None) -> PaymentApplication | None:
    """Which application a refund comes out of; None means the payment's unapplied credit."""
    if kind == RefundKind.UNAPPLIED_CREDIT:
        if invoice is not None:
            raise ApplicationError(
                "An overpayment refund comes out of the payment's unapplied credit, not out of an invoice; "
                f"choose another kind to give back money paid on {invoice.number}.",
                code="refund_invoice_not_allowed",
            )
        return None
    applications = list(payment.applications.select_related("invoice"))
    if invoice is not None:
        for application in applications:
            if application.invoice_id == invoice.pk:
                return application
        raise ApplicationError(
            f"Payment #{payment.pk} is not applied to {invoice.number}.", code="not_applied_to_invoice"
        )
    if len(applications) == 1:
        return applications[0]
    if not applications:
        raise ApplicationError(
            f"Payment #{payment.pk} is not applied to any invoice; only its unapplied credit can be refunded "
            "(kind: overpayment returned).",
            code="refund_not_applied",
        )
    numbers = ", ".join(application.invoice.number for application in applications)
    raise ApplicationError(
        f"Payment #{payment.pk} is split across {numbers}; say which invoice the refund is for.",
        code="refund_invoice_required",
    )


@transaction.atomic
def refund_record(
    *,
    payment: Payment,
    amount: Decimal | str,
    reason: str,
    refunded_on: date,
    method: str,
    kind: str | None = None,
    invoice: Invoice | None = None,
    user=None,
) -> Refund:
    """Record money given back, and what it means (`kind`, see billing.models.Refund).

    - no longer owed: the invoice stays settled through an InvoiceCredit of the same amount;
    - reversal: the invoice it comes out of re-opens, so a payment not yet exported is held again;
    - unapplied credit: out of the payment's unapplied credit, never more than it.
    Without a kind, a refund that fits in the unapplied credit is an overpayment returned, otherwise a reversal.

    How QuickBooks learns of it is decided here, once (Refund.handling): a refund of a payment that is not (and may
    not yet be) in QuickBooks is netted out of what the export posts; otherwise — and always for money no longer
    owed, which QuickBooks records as a Refund Receipt — a ManualHandlingItem says exactly what to enter there.
    """
    amount = parse_amount(amount)
    if not reason.strip():
        raise ApplicationError("Say why the money is refunded.", code="reason_required", extra={"reason": "required"})
    if method not in Refund.Method.values:
        raise ApplicationError(f"Unknown refund method {method!r}.", code="invalid_method")
    if kind is not None and kind not in RefundKind.values:
        raise ApplicationError(
            f"Unknown refund kind {kind!r}; use one of {', '.join(RefundKind.values)}.",
            code="invalid_kind",
            extra={"kind": "invalid"},
        )
    payment = _lock_payment(payment)
    amounts = payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get()
    if kind is None:
        auto_credit = invoice is None and amount <= amounts.unapplied_credit
        kind = RefundKind.UNAPPLIED_CREDIT if auto_credit else RefundKind.REVERSAL
    source = _refund_source(payment=payment, kind=kind, invoice=invoice)
    locked_invoice = _lock_invoices([source.invoice_id])[source.invoice_id] if source is not None else None

    remaining = payment.amount - amounts.amount_refunded
    if amount > remaining:
        raise ApplicationError(
            f"{format_money(amount, payment.currency)} is more than the {format_money(remaining, payment.currency)} "
            f"left of payment #{payment.pk}.",
            code="refund_exceeds_payment",
            extra={"remaining": f"{remaining:.2f}"},
        )
    if source is not None:
        left_on_application = source.amount - sum((r.amount for r in source.refunds.all()), ZERO)
        if amount > left_on_application:
            raise ApplicationError(
                f"{format_money(amount, payment.currency)} is more than the "
                f"{format_money(left_on_application, payment.currency)} of this payment applied to "
                f"{source.invoice.number}.",
                code="refund_exceeds_application",
            )
    elif amount > amounts.unapplied_credit:
        credit = format_money(amounts.unapplied_credit, payment.currency)
        raise ApplicationError(
            f"{format_money(amount, payment.currency)} is more than this payment's unapplied credit of {credit}. "
            f"Record {credit} as an overpayment returned, and the rest as a refund out of the invoice.",
            code="refund_exceeds_credit",
            extra={"unapplied_credit": f"{amounts.unapplied_credit:.2f}"},
        )

    in_quickbooks = payment.export_status in EXPORT_STATUSES_IN_QUICKBOOKS
    refund = Refund(
        payment=payment,
        application=source,
        kind=kind,
        handling=RefundHandling.QUICKBOOKS
        if in_quickbooks or kind == RefundKind.NO_LONGER_OWED
        else RefundHandling.NETTED,
        amount=amount,
        reason=reason.strip(),
        refunded_on=refunded_on,
        method=method,
        created_by=user,
    )
    _full_clean(refund)
    refund.save()
    if kind == RefundKind.NO_LONGER_OWED:
        credit = InvoiceCredit(invoice=locked_invoice, refund=refund, amount=amount)
        _full_clean(credit)
        credit.save()
    if locked_invoice is not None:
        _invoice_sync_paid_status(locked_invoice)
    if refund.handling == RefundHandling.QUICKBOOKS:
        _manual_item_for_refund(payment=payment, refund=refund)
    return refund


def _where_in_quickbooks(payment: Payment) -> str:
    received = f"{format_money(payment.amount, payment.currency)} received {payment.received_on:%Y-%m-%d}"
    reference = f", reference {payment.reference}" if payment.reference else ""
    if payment.export_reference:
        return f"QuickBooks payment {payment.export_reference} ({received}{reference})"
    if payment.export_status == ExportStatus.EXPORTED_MANUALLY:
        return f"the payment keyed into QuickBooks by hand ({received}{reference}; find it by date and amount)"
    return (
        f"FieldSync payment #{payment.pk} ({received}{reference}), which FieldSync is still sending to QuickBooks: "
        "wait until its QuickBooks id shows here before entering this"
    )


def refund_quickbooks_instructions(*, refund: Refund, payment: Payment) -> str:
    """Exactly what to enter in QuickBooks for a refund it must record as its own transaction, so that afterwards
    QuickBooks' invoice balance and customer balance equal FieldSync's (see docs/refunds.md)."""
    money = format_money(refund.amount, payment.currency)
    where = _where_in_quickbooks(payment)
    invoice = refund.application.invoice.number if refund.application_id else None
    paid_by = refund.get_method_display().lower()
    common = f"customer {payment.customer}, date {refund.refunded_on:%Y-%m-%d}, memo “FieldSync refund #{refund.pk}”"
    if refund.kind == RefundKind.NO_LONGER_OWED:
        text = (
            f"Enter a Refund Receipt of {money} ({common}; Refund From: the bank account the payment was deposited "
            f"to; payment method {paid_by}; one line: the service refunded on invoice {invoice}, amount {money}). "
            f"Leave invoice {invoice} and {where} as they are: the customer no longer owes this money, so the "
            "invoice stays paid in QuickBooks, as in FieldSync."
        )
    elif refund.kind == RefundKind.REVERSAL:
        whole = refund.amount == payment.amount
        if whole:
            action = f"Void {where}: QuickBooks re-opens invoice {invoice} by {money}"
        else:
            action = (
                f"Edit {where}: lower the amount applied to invoice {invoice} by {money} and the amount received "
                f"by {money}, so QuickBooks shows {money} open on {invoice} again"
            )
        text = (
            f"The payment was reversed ({paid_by}, {refund.refunded_on:%Y-%m-%d}); the customer still owes {money} "
            f"on invoice {invoice}. {action}, as FieldSync does. (For a bounced check Intuit's “record a returned "
            "payment” steps reach the same balances.) Until this is done, new payments on "
            f"{invoice} wait: QuickBooks would refuse them as more than the invoice's balance."
        )
    else:
        text = (
            f"Refund the customer's credit of {money}: 1) enter a Check or Expense ({common}; Payment account: the "
            f"bank account the payment was deposited to; Category: Accounts Receivable (A/R); amount {money}); "
            f"2) open {where}, which shows the unapplied credit, and tick that check under Outstanding Transactions "
            "so the credit and the check cancel out. No invoice changes."
        )
    return f"{text} Reason given: {refund.reason}"


def _manual_item_for_refund(*, payment: Payment, refund: Refund) -> ManualHandlingItem:
    return ManualHandlingItem.objects.create(
        kind=ManualHandlingItem.Kind.REFUND_OF_EXPORTED_PAYMENT,
        customer=payment.customer,
        payment=payment,
        refund=refund,
        amount=refund.amount,
        quickbooks_reference=payment.export_reference,
        instructions=refund_quickbooks_instructions(refund=refund, payment=payment),
    )


def _refund_items_follow_export(*, payment: Payment, from_status: str) -> None:
    """Keep a payment's open refund items true to where the payment is. The caller holds the payment's row lock.

    - It reached QuickBooks: the items name its QuickBooks id.
    - Its export ended without it reaching QuickBooks (EXPORTING -> QUEUED/FAILED: the engine moves it so only
      when no QuickBooks payment exists and no create is in flight): the refunds it handed over while it was on its
      way are netted out of the export instead, and their items close themselves, with the reason (audited). Money
      no longer owed stays a Refund Receipt to enter once the payment is there.
    """
    items = list(
        ManualHandlingItem.objects.select_for_update(of=("self",))
        .filter(payment=payment, status=ManualHandlingItem.Status.OPEN, refund__isnull=False)
        .select_related("refund__application__invoice", "payment__customer")
    )
    if payment.export_status == ExportStatus.EXPORTED:
        for item in items:
            item.quickbooks_reference = payment.export_reference
            item.instructions = refund_quickbooks_instructions(refund=item.refund, payment=payment)
            item.save(update_fields=["quickbooks_reference", "instructions"])
        return
    if from_status != ExportStatus.EXPORTING:
        return
    for item in items:
        refund = item.refund
        if refund.kind == RefundKind.NO_LONGER_OWED:
            continue
        refund.handling = RefundHandling.NETTED
        refund.save(update_fields=["handling"])
        item.status = ManualHandlingItem.Status.HANDLED
        item.handled_at = timezone.now()
        item.resolved_automatically = True
        item.handled_note = (
            f"Resolved by FieldSync: payment #{payment.pk} turned out not to be in QuickBooks (its export ended "
            f"{payment.get_export_status_display().lower()}), so nothing is to be entered there: FieldSync takes "
            f"the {format_money(refund.amount, payment.currency)} refund out of what it exports instead."
        )
        item.save(update_fields=["status", "handled_at", "resolved_automatically", "handled_note"])


@transaction.atomic
def manual_item_mark_handled(
    *, item: ManualHandlingItem, user, note: str, quickbooks_id: str = ""
) -> ManualHandlingItem:
    """Close a manual-handling item with a note saying what was done. Who and when are recorded, and the QuickBooks
    transaction when FieldSync entered it ("Record it in QuickBooks for me")."""
    if not note.strip():
        raise ApplicationError("Add a note saying what was done in QuickBooks.", code="note_required")
    item = ManualHandlingItem.objects.select_for_update().get(pk=item.pk)
    if item.status == ManualHandlingItem.Status.HANDLED:
        raise ConflictError(
            f"Already marked handled by {item.handled_by} on {item.handled_at:%Y-%m-%d %H:%M}.",
            code="already_handled",
        )
    item.status = ManualHandlingItem.Status.HANDLED
    item.handled_by = user
    item.handled_at = timezone.now()
    item.handled_note = note.strip()
    item.handled_quickbooks_id = quickbooks_id
    item.save(update_fields=["status", "handled_by", "handled_at", "handled_note", "handled_quickbooks_id"])
    return item


# --- Export status ------------------------------------------------------------------------------------------------


class IllegalExportTransition(ConflictError):
    code = "illegal_export_transition"


@transaction.atomic
def payment_export_status_transition(
    *,
    payment_id: int,
    to_status: str,
    expected_from: Iterable[str] | None = None,
    note: str = "",
    user=None,
    export_reference: str | None = None,
) -> Payment:
    """Move a payment's export status, under its row lock, and write the history row.

    `expected_from` makes the move a compare-and-set: the export engine claims a payment with
    expected_from={QUEUED}, so of two workers holding the same task only one wins; the other gets
    IllegalExportTransition and does nothing. Illegal moves (anything not in EXPORT_TRANSITIONS) are refused.
    """
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    current = payment.export_status
    if expected_from is not None and current not in set(expected_from):
        raise IllegalExportTransition(
            f"Payment #{payment_id} is {payment.get_export_status_display().lower()}, not "
            f"{' or '.join(sorted(ExportStatus(s).label.lower() for s in expected_from))}.",
            extra={"current": current},
        )
    if to_status not in EXPORT_TRANSITIONS[current]:
        raise IllegalExportTransition(
            f"Payment #{payment_id} cannot go from {ExportStatus(current).label.lower()} to "
            f"{ExportStatus(to_status).label.lower()}.",
            extra={"current": current},
        )
    payment.export_status = to_status
    payment.export_status_changed_at = timezone.now()
    fields = ["export_status", "export_status_changed_at"]
    if export_reference is not None:
        payment.export_reference = export_reference
        fields.append("export_reference")
    payment.save(update_fields=fields)
    PaymentExportTransition.objects.create(
        payment=payment, from_status=current, to_status=to_status, note=note[:500], by=user
    )
    _refund_items_follow_export(payment=payment, from_status=current)
    return payment


@transaction.atomic
def payment_export_undone(*, payment_id: int, note: str, user=None) -> Payment:
    """EXPORTED -> NOT_EXPORTED, for the export app only once QuickBooks has voided the payment (an undone export):
    QuickBooks keeps it only as a void, so it may be exported again. Deliberately not in EXPORT_TRANSITIONS, so no
    other path (a page, the API, the admin) can take a payment out of "exported". Raises IllegalExportTransition
    when the payment is not EXPORTED."""
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    if payment.export_status != ExportStatus.EXPORTED:
        raise IllegalExportTransition(
            f"Payment #{payment_id} is {payment.get_export_status_display().lower()}, not exported.",
            extra={"current": payment.export_status},
        )
    payment.export_status, payment.export_reference = ExportStatus.NOT_EXPORTED, ""
    payment.export_status_changed_at = timezone.now()
    payment.save(update_fields=["export_status", "export_reference", "export_status_changed_at"])
    PaymentExportTransition.objects.create(
        payment=payment,
        from_status=ExportStatus.EXPORTED,
        to_status=ExportStatus.NOT_EXPORTED,
        note=note[:500],
        by=user,
    )
    return payment


@transaction.atomic
def payment_export_claim(*, payment_ids: Iterable[int], note: str = "") -> list[int]:
    """QUEUED -> EXPORTING for the payments of `payment_ids` that the fully-paid rule lets go; returns those claimed.

    The rule is checked under the same row locks as the claim (the payments, then their invoices, in id order: the
    order refund_record and payment_apply use), so a refund or an application recorded at the same moment either
    comes before the check, and is seen, or waits until the claim is made, and is then flagged as a refund of a
    payment on its way to QuickBooks. Payments not claimed stay QUEUED for the engine to look at again.
    """
    locked = list(
        Payment.objects.select_for_update()
        .filter(pk__in=list(payment_ids), export_status=ExportStatus.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _lock_invoices(PaymentApplication.objects.filter(payment_id__in=locked).values_list("invoice_id", flat=True))
    readiness = payment_export_readiness_map(payment_ids=locked)
    return payment_export_status_bulk_transition(
        payment_ids=[pk for pk in locked if readiness[pk].exportable],
        to_status=ExportStatus.EXPORTING,
        expected_from=[ExportStatus.QUEUED],
        note=note,
    )


@transaction.atomic
def payment_export_status_bulk_transition(
    *, payment_ids: Iterable[int], to_status: str, expected_from: Iterable[str], note: str = "", user=None
) -> list[int]:
    """Move every payment of `payment_ids` that is in one of `expected_from` to `to_status`; return the ids moved.

    The compare-and-set form of payment_export_status_transition for thousands of payments at once: rows are locked,
    only legal moves are made, history rows are written, and payments in any other state are left alone (the caller
    learns which by the ids returned).
    """
    expected_from = set(expected_from)
    for status in expected_from:
        if to_status not in EXPORT_TRANSITIONS[status]:
            raise IllegalExportTransition(
                f"Payments cannot go from {ExportStatus(status).label.lower()} "
                f"to {ExportStatus(to_status).label.lower()}."
            )
    payment_ids = list(payment_ids)
    now = timezone.now()
    moved: list[tuple[int, str]] = []
    for start in range(0, len(payment_ids), 2000):  # stay under SQLite's bound-parameter limit
        chunk = payment_ids[start : start + 2000]
        rows = list(
            Payment.objects.select_for_update()
            .filter(pk__in=chunk, export_status__in=expected_from)
            .order_by("pk")
            .values_list("pk", "export_status")
        )
        Payment.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            export_status=to_status, export_status_changed_at=now
        )
        moved.extend(rows)
    PaymentExportTransition.objects.bulk_create(
        [
            PaymentExportTransition(payment_id=pk, from_status=status, to_status=to_status, note=note[:500], by=user)
            for pk, status in moved
        ],
        batch_size=2000,
    )
    return [pk for pk, _ in moved]
