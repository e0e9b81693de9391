"""Forms of the staff pages that write billing data. They parse input; the rules live in billing.services."""

from django import forms
from django.utils import timezone

from fieldsync.exceptions import ApplicationError

from .models import Invoice, Payment, Refund
from .money import format_money, parse_typed_amount
from .selectors import payment_with_amounts


class _DateInput(forms.DateInput):
    input_type = "date"


class RefundForm(forms.Form):
    # Parsed like the API (billing.money.parse_typed_amount): "1e3", "12.345" or "-5" are refused, never reinterpreted.
    amount = forms.CharField(
        max_length=20, widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "0.00", "size": 10})
    )
    kind = forms.ChoiceField(label="What happened", choices=Refund.Kind.choices, widget=forms.RadioSelect)
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
        credit = payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get().unapplied_credit
        initial = {"refunded_on": timezone.localdate(), "method": payment.method}
        if credit > 0:
            # An overpayment is given back from the unapplied credit first, unless the person chooses otherwise.
            initial["kind"] = Refund.Kind.UNAPPLIED_CREDIT
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.unapplied_credit = credit
        self.fields["kind"].help_text = (
            f"This payment has {format_money(credit, payment.currency)} of unapplied credit."
            if credit > 0
            else "This payment has no unapplied credit."
        )
        invoices = Invoice.objects.filter(applications__payment=payment).order_by("number")
        self.fields["invoice"].queryset = invoices
        self.show_invoice = len(invoices) > 1
        if not self.show_invoice:
            self.fields["invoice"].widget = forms.HiddenInput()

    def clean_amount(self):
        try:
            return parse_typed_amount(self.cleaned_data["amount"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


class ManualItemHandledForm(forms.Form):
    note = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "What you did in QuickBooks, e.g. “Refund Receipt 1043 entered”"}
        ),
    )
