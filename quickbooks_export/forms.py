from django import forms

from quickbooks_export.connection import MappingChoices, QboChoice
from quickbooks_export.models import (
    PAYMENT_METHOD_KEYS,
    PAYMENT_METHOD_LABELS,
    AutoExportSettings,
    QuickBooksMappingSettings,
)

NONE_CHOICE = ("", "— none —")
QUICKBOOKS_DEFAULT_DEPOSIT = ("", "QuickBooks default (Undeposited Funds)")


def _field_name(method: str) -> str:
    return f"payment_method_{method}"


class MappingSettingsForm(forms.Form):
    """Mapping choices offered from the connected company; cleaned data holds QboChoice objects (or None)."""

    deposit_account = forms.ChoiceField(label="Deposit payments to", required=False)
    income_account = forms.ChoiceField(label="Income account for new service items", required=True)
    record_refunds_for_me = forms.BooleanField(
        label="Let FieldSync record reversed payments in QuickBooks (“Record it in QuickBooks for me”)",
        required=False,
    )
    customer_details_winner = forms.ChoiceField(
        label="When a customer's details were changed after export",
        choices=QuickBooksMappingSettings.CustomerDetailsWinner.choices,
        initial=QuickBooksMappingSettings.CustomerDetailsWinner.ASK,
        required=False,  # left out of a post: the company keeps its choice
        help_text="An empty detail never overwrites the other side.",
    )
    bring_in_quickbooks_payments = forms.BooleanField(
        label="Bring in payments recorded in QuickBooks (keyed there against invoices FieldSync exported)",
        required=False,
    )

    def __init__(self, *args, choices: MappingChoices, **kwargs):
        super().__init__(*args, **kwargs)
        self._by_id = {
            "deposit_account": {c.id: c for c in choices.deposit_accounts},
            "income_account": {c.id: c for c in choices.income_accounts},
            "payment_method": {c.id: c for c in choices.payment_methods},
        }
        self.fields["deposit_account"].choices = [QUICKBOOKS_DEFAULT_DEPOSIT] + [
            (c.id, f"{c.name} ({c.type})") for c in choices.deposit_accounts
        ]
        self.fields["income_account"].choices = [("", "— choose —")] + [(c.id, c.name) for c in choices.income_accounts]
        method_choices = [NONE_CHOICE] + [(c.id, c.name) for c in choices.payment_methods]
        for method in PAYMENT_METHOD_KEYS:
            self.fields[_field_name(method)] = forms.ChoiceField(
                label=f"{PAYMENT_METHOD_LABELS[method]} payments", choices=method_choices, required=False
            )

    @classmethod
    def initial_from(cls, mapping: QuickBooksMappingSettings | None) -> dict:
        if mapping is None:
            return {}
        initial = {
            "deposit_account": mapping.deposit_account_id,
            "income_account": mapping.income_account_id,
            "record_refunds_for_me": mapping.record_refunds_for_me,
            "customer_details_winner": mapping.customer_details_winner,
            "bring_in_quickbooks_payments": mapping.bring_in_quickbooks_payments,
        }
        for row in mapping.payment_methods.all():
            initial[_field_name(row.method)] = row.qbo_payment_method_id
        return initial

    def clean_customer_details_winner(self) -> str | None:
        return self.cleaned_data["customer_details_winner"] or None

    def payment_method_fields(self):
        return [self[_field_name(method)] for method in PAYMENT_METHOD_KEYS]

    def _lookup(self, kind: str, value: str) -> QboChoice | None:
        return self._by_id[kind].get(value) if value else None

    def clean(self):
        cleaned = super().clean()
        cleaned["deposit_account"] = self._lookup("deposit_account", cleaned.get("deposit_account", ""))
        cleaned["income_account"] = self._lookup("income_account", cleaned.get("income_account", ""))
        cleaned["payment_methods"] = {
            method: self._lookup("payment_method", cleaned.get(_field_name(method), ""))
            for method in PAYMENT_METHOD_KEYS
        }
        return cleaned


class TaxCodeMappingForm(forms.Form):
    """Which QuickBooks tax code our tax goes to: a default for taxed invoices, one per tax rate (optional), and the
    code of lines without tax (needed outside the US). Choices: the active codes of the company profile."""

    sales_tax_code = forms.ChoiceField(label="Tax code for taxed invoices", required=False)
    no_tax_code = forms.ChoiceField(label="Tax code for lines without tax (outside the US)", required=False)

    def __init__(self, *args, tax_codes: list[dict], tax_rates, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [NONE_CHOICE] + [(c["id"], c["name"]) for c in tax_codes if c.get("active", True)]
        self.fields["sales_tax_code"].choices = choices
        self.fields["no_tax_code"].choices = choices
        self.rates = list(tax_rates)
        for rate in self.rates:
            self.fields[f"rate_{rate.pk}"] = forms.ChoiceField(
                label=f"Tax code for {rate}", choices=choices, required=False
            )

    def rate_fields(self):
        return [self[f"rate_{rate.pk}"] for rate in self.rates]

    def per_rate(self) -> dict[int, str]:
        return {rate.pk: self.cleaned_data.get(f"rate_{rate.pk}", "") for rate in self.rates}


class UnitTrackingForm(forms.Form):
    """The QuickBooks class and location a unit's invoices carry. Choices: the active entries of the company's lists
    as last read; a field shows only while the company tracks it."""

    class_id = forms.ChoiceField(label="Class", required=False)
    department_id = forms.ChoiceField(label="Location", required=False)

    def __init__(self, *args, profile, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["class_id"].choices = [NONE_CHOICE, *profile.active_choices("classes").items()]
        self.fields["department_id"].label = profile.location_label
        self.fields["department_id"].choices = [NONE_CHOICE, *profile.active_choices("departments").items()]
        if not profile.tracks_classes:
            del self.fields["class_id"]
        if not profile.track_departments:
            del self.fields["department_id"]


SAME_AS_UNIT = ("", "Same as the unit")


class JobTypeTrackingForm(forms.Form):
    """Per job type of the unit, the QuickBooks class and location its jobs' invoices carry instead of the unit's.
    Choices: the active entries of the company's lists as last read ("Same as the unit" keeps the unit's); a column
    shows only while the company tracks it. Fields class_<job type id> and department_<job type id>."""

    def __init__(self, *args, profile, job_types, **kwargs):
        super().__init__(*args, **kwargs)
        self.job_types = list(job_types)
        classes = [SAME_AS_UNIT, *profile.active_choices("classes").items()]
        departments = [SAME_AS_UNIT, *profile.active_choices("departments").items()]
        for job_type in self.job_types:
            if profile.tracks_classes:
                label = f"Class for {job_type.name}"
                self.fields[f"class_{job_type.pk}"] = forms.ChoiceField(
                    label=label, choices=classes, required=False, widget=forms.Select(attrs={"aria-label": label})
                )
            if profile.track_departments:
                label = f"{profile.location_label} for {job_type.name}"
                self.fields[f"department_{job_type.pk}"] = forms.ChoiceField(
                    label=label, choices=departments, required=False, widget=forms.Select(attrs={"aria-label": label})
                )

    def rows(self):
        """(job type, its class field or None, its location field or None), for the template."""
        return [
            (
                job_type,
                self[f"class_{job_type.pk}"] if f"class_{job_type.pk}" in self.fields else None,
                self[f"department_{job_type.pk}"] if f"department_{job_type.pk}" in self.fields else None,
            )
            for job_type in self.job_types
        ]

    def choices(self) -> dict[int, tuple[str, str]]:
        """Job type id -> (class id, location id) as chosen; "" for the unit's."""
        return {
            job_type.pk: (
                self.cleaned_data.get(f"class_{job_type.pk}", ""),
                self.cleaned_data.get(f"department_{job_type.pk}", ""),
            )
            for job_type in self.job_types
        }

    @staticmethod
    def initial_from(rows: dict) -> dict[str, str]:
        initial = {}
        for job_type_id, row in rows.items():
            initial[f"class_{job_type_id}"] = row.class_id
            initial[f"department_{job_type_id}"] = row.department_id
        return initial


class AutoExportForm(forms.Form):
    """When FieldSync exports by itself (auto_export.py)."""

    mode = forms.ChoiceField(
        label="Export to QuickBooks automatically",
        choices=AutoExportSettings.Mode.choices,
        widget=forms.RadioSelect,
    )
    nightly_at = forms.TimeField(
        label="Time of the nightly export",
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Only for “Every night”. The company's local time.",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mode") == AutoExportSettings.Mode.NIGHTLY and cleaned.get("nightly_at") is None:
            self.add_error("nightly_at", "Choose the time of the nightly export, e.g. 22:00.")
        return cleaned


class _DateInput(forms.DateInput):
    input_type = "date"


class ReconciliationForm(forms.Form):
    """The range of transaction dates (invoice date, payment date) to reconcile with QuickBooks."""

    date_from = forms.DateField(label="From", widget=_DateInput())
    date_to = forms.DateField(label="To", widget=_DateInput())
