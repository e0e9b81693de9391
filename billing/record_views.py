"""Record pages: customers, jobs, invoices and payments, entered and read by office staff.

Thin views over billing.services (the same services the API calls, so there is one set of rules): a form parses the
input, one service writes, and a refusal is shown in place, in the form, with nothing changed (every service is
atomic and validates before writing). Lists read a page of rows in a constant number of queries whatever the size
of the company; balances come from billing.selectors' SQL annotations, never from Python loops over rows.

Every page needs a signed-in user and the model's view permission; every write needs its add/change permission,
and its buttons are shown only to people who have it.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from fieldsync.exceptions import ApplicationError

from . import services
from .models import Customer, Invoice, Job, Payment
from .money import ZERO, format_money
from .record_forms import (
    ApplyCreditForm,
    CustomerForm,
    InvoiceEditForm,
    InvoiceForm,
    InvoiceLineEditFormSet,
    InvoiceLineFormSet,
    JobForm,
    PaymentForm,
    add_service_error,
    invoice_line_initial,
)
from .selectors import business_unit_for_request, in_business_unit, invoice_with_balances, payment_with_amounts

PAGE_SIZE = 50
PAYMENT_PAGE = "exports:payment_detail"


def _required(*codenames: str):
    return permission_required([f"billing.{codename}" for codename in codenames], raise_exception=True)


def _page_number(request: HttpRequest) -> int:
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _one_page(queryset, page: int) -> tuple[list, bool]:
    """A page of rows and whether there is a next one, without counting the table (one query, one row extra)."""
    offset = (page - 1) * PAGE_SIZE
    rows = list(queryset[offset : offset + PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _pager(request: HttpRequest, page: int, has_next: bool, count: int) -> dict:
    query = request.GET.copy()
    query.pop("page", None)
    base = query.urlencode()
    first = (page - 1) * PAGE_SIZE + 1
    return {
        "page": page,
        "first_index": first if count else 0,
        "last_index": first + count - 1,
        "previous_query": f"{base}&page={page - 1}" if page > 1 else None,
        "next_query": f"{base}&page={page + 1}" if has_next else None,
    }


# --- Customers ----------------------------------------------------------------------------------------------------


@login_required
@_required("view_customer")
@require_GET
def customer_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:100]
    customers = in_business_unit(Customer.objects, request).order_by("display_name", "id")
    if q:
        customers = customers.filter(
            Q(display_name__icontains=q) | Q(company_name__icontains=q) | Q(email__icontains=q) | Q(phone__icontains=q)
        )
    page = _page_number(request)
    rows, has_next = _one_page(customers, page)
    context = {"nav": "customers", "customers": rows, "q": q, **_pager(request, page, has_next, len(rows))}
    return render(request, "billing/records/customer_list.html", context)


@login_required
@_required("add_customer")
@require_http_methods(["GET", "POST"])
def customer_create(request: HttpRequest) -> HttpResponse:
    form = CustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.customer_create(business_unit=business_unit_for_request(request), **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Customer {customer} added.")
            return redirect("records:customer_detail", customer_id=customer.pk)
    context = {"nav": "customers", "form": form, "title": "New customer"}
    return render(request, "billing/records/customer_form.html", context, status=400 if form.errors else 200)


@login_required
@_required("change_customer")
@require_http_methods(["GET", "POST"])
def customer_edit(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(in_business_unit(Customer.objects, request), pk=customer_id)
    form = CustomerForm.for_customer(customer, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.customer_update(customer=customer, **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Saved {customer}.")
            return redirect("records:customer_detail", customer_id=customer.pk)
    context = {"nav": "customers", "form": form, "customer": customer, "title": f"Edit {customer}"}
    return render(request, "billing/records/customer_form.html", context, status=400 if form.errors else 200)


@login_required
@_required("view_customer")
@require_GET
def customer_detail(request: HttpRequest, customer_id: int) -> HttpResponse:
    """Everything about one customer: jobs, invoices with what is open, payments with unapplied credit, and (from the
    template) whether the customer is in QuickBooks yet."""
    customer = get_object_or_404(in_business_unit(Customer.objects, request), pk=customer_id)
    invoices = list(
        invoice_with_balances(customer.invoices.select_related("job")).order_by("-issued_on", "-id")[:PAGE_SIZE]
    )
    payments = list(payment_with_amounts(customer.payments.all()).order_by("-received_on", "-id")[:PAGE_SIZE])
    open_total = sum(
        (i.open_balance for i in invoices if i.status in (Invoice.Status.OPEN, Invoice.Status.PAID)),
        ZERO,
    )
    context = {
        "nav": "customers",
        "customer": customer,
        "jobs": list(customer.jobs.select_related("job_type").order_by("-id")[:PAGE_SIZE]),
        "invoices": [(invoice, _money_of(invoice)) for invoice in invoices],
        "payments": [(payment, _credit_of(payment)) for payment in payments],
        "open_total": format_money(open_total),
    }
    return render(request, "billing/records/customer_detail.html", context)


def _money_of(invoice: Invoice) -> dict:
    return {
        "total": format_money(invoice.total, invoice.currency),
        "paid": format_money(invoice.amount_paid, invoice.currency),
        "open": format_money(invoice.open_balance, invoice.currency),
        "open_figure": f"{invoice.open_balance:.2f}",  # for pre-filling a form: "50.00", not "$50.00"
        "is_open": invoice.status == Invoice.Status.OPEN and invoice.open_balance > 0,
    }


def _credit_of(payment: Payment) -> dict:
    return {
        "amount": format_money(payment.amount, payment.currency),
        "credit": format_money(payment.unapplied_credit, payment.currency),
        "has_credit": payment.unapplied_credit > 0,
    }


# --- Jobs ---------------------------------------------------------------------------------------------------------


@login_required
@_required("add_job")
@require_http_methods(["GET", "POST"])
def job_create(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(in_business_unit(Customer.objects, request), pk=customer_id)
    form = JobForm(request.POST or None, customer=customer)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_create(customer=customer, **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Job {job.number} added for {customer}.")
            return redirect("records:customer_detail", customer_id=customer.pk)
    context = {"nav": "customers", "form": form, "customer": customer}
    return render(request, "billing/records/job_form.html", context, status=400 if form.errors else 200)


@login_required
@_required("change_job")
@require_http_methods(["GET", "POST"])
def job_edit(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's title, address, date, status and job type (its number and customer are fixed)."""
    job = get_object_or_404(in_business_unit(Job.objects.select_related("customer", "job_type"), request), pk=job_id)
    form = JobForm.for_job(job, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_update(job=job, **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Saved job {job.number}.")
            return redirect("records:customer_detail", customer_id=job.customer_id)
    context = {"nav": "customers", "form": form, "customer": job.customer, "job": job}
    return render(request, "billing/records/job_form.html", context, status=400 if form.errors else 200)


# --- Invoices -----------------------------------------------------------------------------------------------------

INVOICE_STATUS_FILTERS = (("", "Any status"), *Invoice.Status.choices)


@login_required
@_required("view_invoice")
@require_GET
def invoice_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    invoices = in_business_unit(Invoice.objects, request).select_related("customer").order_by("-id")
    if q:
        invoices = invoices.filter(Q(number__icontains=q) | Q(customer__display_name__icontains=q))
    if status in Invoice.Status.values:
        invoices = invoices.filter(status=status)
    page = _page_number(request)
    rows, has_next = _one_page(invoice_with_balances(invoices), page)
    context = {
        "nav": "invoices",
        "invoices": [(invoice, _money_of(invoice)) for invoice in rows],
        "q": q,
        "status": status,
        "statuses": INVOICE_STATUS_FILTERS,
        **_pager(request, page, has_next, len(rows)),
    }
    return render(request, "billing/records/invoice_list.html", context)


@login_required
@_required("add_invoice")
@require_http_methods(["GET", "POST"])
def invoice_create(request: HttpRequest, customer_id: int) -> HttpResponse:
    """A draft invoice with its lines. "Add a line" posts the form back with one more empty line (no script)."""
    customer = get_object_or_404(in_business_unit(Customer.objects, request), pk=customer_id)
    data = request.POST if request.method == "POST" else None
    initial = {"job": request.GET.get("job")} if request.GET.get("job", "").isdigit() else None
    form = InvoiceForm(data, customer=customer, initial=initial)
    lines = InvoiceLineFormSet(data, prefix="lines", initial=None if data else [{"quantity": "1"}, {"quantity": "1"}])
    if data is not None and "add_line" in data:
        form = InvoiceForm(customer=customer, initial=data.dict())
        lines = _with_one_more_line(data)
        return render(request, "billing/records/invoice_form.html", _invoice_form_context(customer, form, lines))
    # `&`, not `and`: both are validated, so every mistake on the page is marked at once.
    if data is not None and form.is_valid() & lines.is_valid():
        line_inputs = [
            services.LineInput(
                service_name=line["service_name"],
                description=line["description"],
                quantity=line["quantity"],
                unit_price=line["unit_price"],
            )
            for line in lines.cleaned_data
            if line
        ]
        values = form.cleaned_data
        try:
            invoice = services.invoice_create(
                customer=customer,
                number=values["number"],
                job=values["job"],
                issued_on=values["issued_on"],
                due_on=values["due_on"],
                sales_tax=values["sales_tax"] or "0.00",
                memo=values["memo"],
                lines=line_inputs,
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Invoice {invoice.number} saved as a draft. Issue it when it is ready to send.")
            return redirect("records:invoice_detail", invoice_id=invoice.pk)
    status = 400 if data is not None else 200
    return render(
        request, "billing/records/invoice_form.html", _invoice_form_context(customer, form, lines), status=status
    )


def _with_one_more_line(data, formset=InvoiceLineFormSet):
    """The lines typed so far plus an empty one, unbound: nothing is validated (or complained about) yet."""
    total = int(data.get("lines-TOTAL_FORMS", "1")) if data.get("lines-TOTAL_FORMS", "").isdigit() else 1
    names = formset.form.base_fields
    typed = [{name: data.get(f"lines-{i}-{name}", "") for name in names} for i in range(min(total, 49))]
    if "taxable" in names:  # an unticked box is absent from the post, not ""
        for i, row in enumerate(typed):
            row["taxable"] = f"lines-{i}-taxable" in data
    return formset(prefix="lines", initial=[*typed, {"quantity": "1", "taxable": True}])


def _invoice_form_context(customer, form, lines) -> dict:
    return {"nav": "invoices", "customer": customer, "form": form, "lines": lines}


def _invoice_or_404(request: HttpRequest, invoice_id: int) -> Invoice:
    invoices = in_business_unit(Invoice.objects.select_related("customer", "job"), request)
    return get_object_or_404(invoice_with_balances(invoices), pk=invoice_id)


@login_required
@_required("view_invoice")
@require_GET
def invoice_detail(request: HttpRequest, invoice_id: int) -> HttpResponse:
    """An invoice: its lines, the payments applied to it, and what is still open (with a button to record it)."""
    invoice = _invoice_or_404(request, invoice_id)
    applications = list(invoice.applications.select_related("payment").prefetch_related("refunds").order_by("id"))
    credits = list(
        payment_with_amounts(Payment.objects.filter(customer_id=invoice.customer_id))
        .filter(unapplied_credit__gt=0)
        .order_by("received_on", "id")[:20]
    )
    context = {
        "nav": "invoices",
        "invoice": invoice,
        "money": _money_of(invoice),
        "sales_tax": format_money(invoice.sales_tax, invoice.currency),
        "lines": [
            (line, format_money(line.unit_price, invoice.currency), format_money(line.amount, invoice.currency))
            for line in invoice.lines.all()
        ],
        "applications": [
            (
                application,
                format_money(application.amount - sum(r.amount for r in application.refunds.all()), invoice.currency),
            )
            for application in applications
        ],
        "credits": [(payment, format_money(payment.unapplied_credit, payment.currency)) for payment in credits],
        "can_issue": invoice.status == Invoice.Status.DRAFT,
        # Settled at issue with nothing to pay (warranty work): it goes to QuickBooks on its own, invoice-only.
        "nothing_to_pay": invoice.status == Invoice.Status.PAID and invoice.total == 0 and not applications,
        "can_void": invoice.status != Invoice.Status.VOID and invoice.amount_paid == 0,
        "can_edit": invoice.status != Invoice.Status.VOID,
    }
    return render(request, "billing/records/invoice_detail.html", context)


@login_required
@_required("view_invoice", "change_invoice")
@require_http_methods(["GET", "POST"])
def invoice_edit(request: HttpRequest, invoice_id: int) -> HttpResponse:
    """Change an invoice's lines, tax or dates, also once issued (billing.services.invoice_edit, as the API's PATCH).
    An issued invoice already in QuickBooks gets the change there too, or a flag saying why not."""
    invoice = get_object_or_404(
        in_business_unit(Invoice.objects, request).select_related("customer", "tax_rate").prefetch_related("lines"),
        pk=invoice_id,
    )
    if invoice.status == Invoice.Status.VOID:
        messages.error(request, f"{invoice.number} is void; a void invoice cannot change.")
        return redirect("records:invoice_detail", invoice_id=invoice.pk)
    data = request.POST if request.method == "POST" else None
    form = InvoiceEditForm(data, invoice=invoice)
    lines = InvoiceLineEditFormSet(data, prefix="lines", initial=None if data else invoice_line_initial(invoice))
    if data is not None and "add_line" in data:
        form = InvoiceEditForm(invoice=invoice, initial=data.dict())
        lines = _with_one_more_line(data, InvoiceLineEditFormSet)
        return render(request, "billing/records/invoice_edit.html", _invoice_edit_context(invoice, form, lines))
    if data is not None and form.is_valid() & lines.is_valid():
        values = form.cleaned_data
        rate = values["tax_rate"]
        try:
            services.invoice_edit(
                invoice=invoice,
                lines=[
                    services.LineEdit(
                        line_id=line["line_id"],
                        service_name=line["service_name"],
                        description=line["description"],
                        quantity=line["quantity"],
                        unit_price=line["unit_price"],
                        taxable=line["taxable"],
                    )
                    for line in lines.lines()
                ],
                tax_rate=rate,
                sales_tax=None if rate else (values["sales_tax"] or "0.00"),
                issued_on=values["issued_on"],
                due_on=values["due_on"],
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"{invoice.number} saved.")
            return redirect("records:invoice_detail", invoice_id=invoice.pk)
    status = 400 if data is not None else 200
    return render(
        request, "billing/records/invoice_edit.html", _invoice_edit_context(invoice, form, lines), status=status
    )


def _invoice_edit_context(invoice, form, lines) -> dict:
    return {"nav": "invoices", "invoice": invoice, "form": form, "lines": lines}


def _invoice_action(request: HttpRequest, invoice_id: int, action, done: str) -> HttpResponse:
    invoice = get_object_or_404(in_business_unit(Invoice.objects, request), pk=invoice_id)
    try:
        invoice = action(invoice)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(number=invoice.number))
    return redirect("records:invoice_detail", invoice_id=invoice.pk)


@login_required
@_required("change_invoice")
@require_POST
def invoice_issue(request: HttpRequest, invoice_id: int) -> HttpResponse:
    return _invoice_action(
        request,
        invoice_id,
        lambda invoice: services.invoice_issue(invoice=invoice),
        "{number} is issued: payments can now be applied to it.",
    )


@login_required
@_required("change_invoice")
@require_POST
def invoice_void(request: HttpRequest, invoice_id: int) -> HttpResponse:
    return _invoice_action(
        request, invoice_id, lambda invoice: services.invoice_void(invoice=invoice), "{number} is void."
    )


# --- Payments -----------------------------------------------------------------------------------------------------


def _open_invoices(customer: Customer) -> list[Invoice]:
    """The customer's issued invoices with money still open, oldest first (the order people pay them)."""
    invoices = invoice_with_balances(Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN))
    return list(invoices.filter(open_balance__gt=0).order_by("issued_on", "id")[:PAGE_SIZE])


@login_required
@_required("add_payment")
@require_http_methods(["GET", "POST"])
def payment_create(request: HttpRequest, customer_id: int) -> HttpResponse:
    """Money received from a customer, applied to one invoice or split across several.

    `?invoice=<id>&amount=<open>` fills the form in for "Record the remaining $50.00" (a held payment's page) and
    "Record a payment" (an invoice's page)."""
    customer = get_object_or_404(in_business_unit(Customer.objects, request), pk=customer_id)
    open_invoices = _open_invoices(customer)
    initial = {}
    invoice_id, amount = request.GET.get("invoice", ""), request.GET.get("amount", "")
    if invoice_id.isdigit() and any(invoice.pk == int(invoice_id) for invoice in open_invoices):
        initial = {"amount": amount, f"apply_{invoice_id}": amount}
    form = PaymentForm(request.POST or None, open_invoices=open_invoices, initial=initial)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        try:
            payment = services.payment_record(
                customer=customer,
                amount=values["amount"],
                method=values["method"],
                received_on=values["received_on"],
                reference=values["reference"],
                memo=values["memo"],
                applications=[
                    services.ApplicationInput(invoice=invoice, amount=value) for invoice, value in form.applications()
                ],
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"Payment of {format_money(payment.amount, payment.currency)} recorded.")
            return redirect(PAYMENT_PAGE, payment_id=payment.pk)
    context = {"nav": "payments", "customer": customer, "form": form}
    return render(request, "billing/records/payment_form.html", context, status=400 if form.errors else 200)


@login_required
@_required("change_payment")
@require_http_methods(["GET", "POST"])
def payment_apply_credit(request: HttpRequest, payment_id: int) -> HttpResponse:
    """Apply a payment's unapplied credit to one of the customer's open invoices."""
    payment = get_object_or_404(
        payment_with_amounts(in_business_unit(Payment.objects, request).select_related("customer")), pk=payment_id
    )
    open_invoices = _open_invoices(payment.customer)
    invoices = Invoice.objects.filter(pk__in=[invoice.pk for invoice in open_invoices]).order_by("issued_on", "id")
    initial = {"amount": payment.unapplied_credit}
    if request.GET.get("invoice", "").isdigit():
        initial["invoice"] = int(request.GET["invoice"])
    form = ApplyCreditForm(request.POST or None, invoices=invoices, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.payment_apply(
                payment=payment, invoice=form.cleaned_data["invoice"], amount=form.cleaned_data["amount"]
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request,
                f"{format_money(form.cleaned_data['amount'], payment.currency)} of the credit applied to "
                f"{form.cleaned_data['invoice'].number}.",
            )
            return redirect(PAYMENT_PAGE, payment_id=payment.pk)
    context = {
        "nav": "payments",
        "payment": payment,
        "form": form,
        "credit": format_money(payment.unapplied_credit, payment.currency),
        "open_invoices": [(invoice, format_money(invoice.open_balance, invoice.currency)) for invoice in open_invoices],
    }
    return render(request, "billing/records/apply_credit.html", context, status=400 if form.errors else 200)
