"""Forms of the staff pages that write billing data. They parse input; the rules live in billing.services."""

from django import forms
from django.utils import timezone

from .models import Invoice, Payment, Refund


class _DateInput(forms.DateInput):
    input_type = "date"


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0.01,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "placeholder": "0.00"}),
    )
    refunded_on = forms.DateField(label="Refunded on", widget=_DateInput())
    method = forms.ChoiceField(label="Paid back by", choices=Refund.Method.choices)
    invoice = forms.ModelChoiceField(
        label="Out of invoice",
        queryset=Invoice.objects.none(),
        required=False,
        empty_label="Let FieldSync choose",
        help_text="Needed only when the payment is split across invoices.",
    )
    reason = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"placeholder": "Why the money goes back"}))

    def __init__(self, *args, payment: Payment, **kwargs):
        kwargs.setdefault("initial", {"refunded_on": timezone.localdate(), "method": payment.method})
        super().__init__(*args, **kwargs)
        invoices = Invoice.objects.filter(applications__payment=payment).order_by("number")
        self.fields["invoice"].queryset = invoices
        self.show_invoice = len(invoices) > 1
        if not self.show_invoice:
            self.fields["invoice"].widget = forms.HiddenInput()


class ManualItemHandledForm(forms.Form):
    note = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "What you did in QuickBooks, e.g. “Refund Receipt 1043 entered”"}
        ),
    )
