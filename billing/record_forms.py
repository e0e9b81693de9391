"""Forms of the record pages (customers, jobs, invoices, payments). They only parse what a person typed; every rule
lives in billing.services, which the views call with the cleaned data, exactly as the API does.

Amounts are text parsed by billing.money.parse_amount (never a float): "1e3", "12.345" and "-5" are refused with the
same words the API uses. Each form keeps its fields in one place, so a field the services gain later (a refund's
kind, a line's taxability) is one more line here and one more keyword in the view's service call.
"""

import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from fieldsync.exceptions import ApplicationError

from .models import Customer, Invoice, Job, JobType, Payment, TaxRate
from .money import InvalidAmountError, format_money, parse_amount


class DateInput(forms.DateInput):
    input_type = "date"


# Digits with an optional decimal part: no exponents ("1e3"), no "NaN", no "Infinity".
_AMOUNT_TEXT = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")


class MoneyField(forms.Field):
    """An amount as a person types it ("150", "150.00", "1,250.50", "$80"), cleaned to a two-place Decimal."""

    max_length = 20

    def __init__(self, *args, allow_zero: bool = False, **kwargs):
        self.allow_zero = allow_zero
        attrs = {"inputmode": "decimal", "placeholder": "0.00", "autocomplete": "off", "maxlength": self.max_length}
        kwargs.setdefault("widget", forms.TextInput(attrs=attrs))
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        text = str(value or "").replace(",", "").replace("$", "").strip()
        if not text:
            return None
        label = str(self.label or "Amount")
        if len(text) > self.max_length or not _AMOUNT_TEXT.fullmatch(text):
            raise ValidationError(f"{label}: type an amount in figures, like 150.00.", code="not_a_number")
        try:
            return parse_amount(text, field=label, allow_zero=self.allow_zero)
        except InvalidAmountError as exc:
            raise ValidationError(exc.message, code=exc.code) from None


def add_service_error(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's refusal in the form: on the field it names when the form has that field, else on top."""
    placed = False
    for field, messages in (exc.extra or {}).items():
        if field in form.fields and isinstance(messages, list):
            for message in messages:
                form.add_error(field, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


# --- Customers and jobs -------------------------------------------------------------------------------------------


class CustomerForm(forms.Form):
    display_name = forms.CharField(
        label="Name",
        max_length=200,
        help_text="How the customer is called on invoices and in QuickBooks.",
        error_messages={"required": "Give the customer a name."},
    )
    company_name = forms.CharField(label="Company", max_length=200, required=False)
    email = forms.EmailField(label="E-mail", required=False)
    phone = forms.CharField(label="Phone", max_length=40, required=False)
    billing_line1 = forms.CharField(label="Billing address", max_length=200, required=False)
    billing_line2 = forms.CharField(label="Address line 2", max_length=200, required=False)
    billing_city = forms.CharField(label="City", max_length=100, required=False)
    billing_region = forms.CharField(label="State / region", max_length=100, required=False)
    billing_postal_code = forms.CharField(label="Postal code", max_length=20, required=False)
    billing_country = forms.CharField(
        label="Country", max_length=2, required=False, initial="US", help_text="Two letters, e.g. US."
    )

    @classmethod
    def for_customer(cls, customer: Customer, *args, **kwargs) -> "CustomerForm":
        kwargs.setdefault("initial", {name: getattr(customer, name) for name in cls.base_fields})
        return cls(*args, **kwargs)

    def clean_billing_country(self) -> str:
        return self.cleaned_data["billing_country"].strip().upper()


class JobForm(forms.Form):
    number = forms.CharField(label="Job number", max_length=30, help_text="Your own job number, e.g. J-1042.")
    title = forms.CharField(label="What the job is", max_length=200)
    service_address = forms.CharField(label="Service address", max_length=300, required=False)
    scheduled_on = forms.DateField(label="Scheduled for", required=False, widget=DateInput())
    status = forms.ChoiceField(label="Status", choices=Job.Status.choices, initial=Job.Status.SCHEDULED)
    job_type = forms.ModelChoiceField(
        label="Job type",
        queryset=JobType.objects.none(),
        required=False,
        empty_label="No job type",
        error_messages={"invalid_choice": "Choose one of this business unit's job types."},
    )

    def __init__(self, *args, customer: Customer, job: Job | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # The customer's unit's types still offered (and the one the job has): another unit's type, or a retired
        # one, is not a choice.
        offered = Q(active=True) | Q(pk=job.job_type_id) if job is not None and job.job_type_id else Q(active=True)
        self.fields["job_type"].queryset = JobType.objects.filter(offered, business_unit_id=customer.business_unit_id)
        if job is not None:
            del self.fields["number"]  # fixed once the job exists: invoices and QuickBooks know it by number

    @classmethod
    def for_job(cls, job: Job, *args, **kwargs) -> "JobForm":
        names = ("title", "service_address", "scheduled_on", "status", "job_type")
        kwargs.setdefault("initial", {name: getattr(job, name) for name in names})
        return cls(*args, customer=job.customer, job=job, **kwargs)


# --- Invoices -----------------------------------------------------------------------------------------------------


class InvoiceForm(forms.Form):
    number = forms.CharField(
        label="Invoice number", max_length=21, help_text="Up to 21 characters; it becomes the QuickBooks invoice no."
    )
    job = forms.ModelChoiceField(label="Job", queryset=Job.objects.none(), required=False, empty_label="No job")
    issued_on = forms.DateField(label="Invoice date", required=False, widget=DateInput())
    due_on = forms.DateField(label="Due", required=False, widget=DateInput())
    sales_tax = MoneyField(label="Sales tax", required=False, allow_zero=True, help_text="Leave empty for none.")
    memo = forms.CharField(label="Note on the invoice", required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job"].queryset = Job.objects.filter(customer=customer).order_by("-id")


class InvoiceLineForm(forms.Form):
    service_name = forms.CharField(label="Service", max_length=100)
    description = forms.CharField(label="Description", max_length=500, required=False)
    quantity = MoneyField(label="Quantity", initial="1")
    unit_price = MoneyField(label="Unit price", allow_zero=True)


class _LineFormSet(forms.BaseFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        if not any(form.cleaned_data and not form.cleaned_data.get("DELETE") for form in self.forms):
            raise ValidationError("Add at least one line: what was sold, how many, and the price.")


InvoiceLineFormSet = forms.formset_factory(InvoiceLineForm, formset=_LineFormSet, extra=0, max_num=50, min_num=1)


class InvoiceEditForm(forms.Form):
    """The dates and tax of an invoice being changed (its lines are InvoiceLineEditFormSet). A date left empty keeps
    the invoice's date; with a tax rate the tax is computed and the amount is ignored."""

    issued_on = forms.DateField(label="Invoice date", required=False, widget=DateInput())
    due_on = forms.DateField(label="Due", required=False, widget=DateInput())
    tax_rate = forms.ModelChoiceField(
        label="Tax rate", queryset=TaxRate.objects.none(), required=False, empty_label="None"
    )
    sales_tax = MoneyField(label="Sales tax", required=False, allow_zero=True, help_text="Used when there is no rate.")

    def __init__(self, *args, invoice: Invoice, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "issued_on": invoice.issued_on,
                "due_on": invoice.due_on,
                "tax_rate": invoice.tax_rate_id,
                "sales_tax": "" if invoice.tax_rate_id else f"{invoice.sales_tax:.2f}",
            },
        )
        super().__init__(*args, **kwargs)
        # Active rates, and the invoice's own even if it is no longer in use (keeping it is not choosing it).
        self.fields["tax_rate"].queryset = TaxRate.objects.filter(
            Q(active=True) | Q(pk=invoice.tax_rate_id or 0)
        ).order_by("name")


class InvoiceLineEditForm(InvoiceLineForm):
    line_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    taxable = forms.BooleanField(label="Taxable", required=False, initial=True)


class _LineEditFormSet(_LineFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove"

    def lines(self) -> list[dict]:
        """The lines to keep, in order (a ticked "Remove" drops the line)."""
        return [form.cleaned_data for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]


InvoiceLineEditFormSet = forms.formset_factory(
    InvoiceLineEditForm, formset=_LineEditFormSet, extra=0, max_num=50, min_num=1, can_delete=True
)


def invoice_line_initial(invoice: Invoice) -> list[dict]:
    return [
        {
            "line_id": line.pk,
            "service_name": line.service_name,
            "description": line.description,
            "quantity": f"{line.quantity:.2f}",
            "unit_price": f"{line.unit_price:.2f}",
            "taxable": line.taxable,
        }
        for line in invoice.lines.all()
    ]


class InvoiceIssueForm(forms.Form):
    issued_on = forms.DateField(label="Invoice date", required=False, widget=DateInput())


# --- Payments -----------------------------------------------------------------------------------------------------


class PaymentForm(forms.Form):
    """Money received from one customer, applied to one or several of their open invoices (what is left over is
    unapplied credit). One "apply_<invoice id>" field per open invoice."""

    amount = MoneyField(label="Amount received")
    method = forms.ChoiceField(label="Paid by", choices=Payment.Method.choices)
    received_on = forms.DateField(label="Received on", widget=DateInput())
    reference = forms.CharField(
        label="Reference", max_length=100, required=False, help_text="Check number, card charge id…"
    )
    memo = forms.CharField(label="Note", required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, open_invoices: list[Invoice], **kwargs):
        kwargs.setdefault("initial", {}).setdefault("received_on", timezone.localdate())
        super().__init__(*args, **kwargs)
        self.open_invoices = open_invoices
        for invoice in open_invoices:
            self.fields[f"apply_{invoice.pk}"] = MoneyField(
                label=f"Apply to {invoice.number}",
                required=False,
                help_text=f"{format_money(invoice.open_balance, invoice.currency)} open",
            )

    def apply_fields(self):
        return [self[f"apply_{invoice.pk}"] for invoice in self.open_invoices]

    def applications(self) -> list[tuple[Invoice, Decimal]]:
        return [
            (invoice, self.cleaned_data[f"apply_{invoice.pk}"])
            for invoice in self.open_invoices
            if self.cleaned_data.get(f"apply_{invoice.pk}")
        ]


class ApplyCreditForm(forms.Form):
    invoice = forms.ModelChoiceField(label="Invoice", queryset=Invoice.objects.none(), empty_label=None)
    amount = MoneyField(label="Amount to apply")

    def __init__(self, *args, invoices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invoice"].queryset = invoices
