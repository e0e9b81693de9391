from django import forms

from .services import PASSWORD_MIN_LENGTH


class DesktopSettingsForm(forms.Form):
    use_desktop = forms.BooleanField(
        label="Export to QuickBooks Desktop (instead of QuickBooks Online)", required=False
    )
    username = forms.CharField(label="Web Connector user name", max_length=100)
    income_account_name = forms.CharField(
        label="Income account for new service items", max_length=159, help_text="As named in QuickBooks Desktop."
    )
    deposit_account_name = forms.CharField(
        label="Deposit payments to", max_length=159, required=False, help_text="Empty: Undeposited Funds."
    )
    run_every_minutes = forms.IntegerField(label="Run every (minutes)", min_value=1, max_value=1440)
    # Our payment method -> the name of a Payment Method in the Desktop company (empty: sent without one).
    method_cash = forms.CharField(label="Cash → QuickBooks payment method", max_length=31, required=False)
    method_check = forms.CharField(label="Check → QuickBooks payment method", max_length=31, required=False)
    method_card = forms.CharField(label="Card → QuickBooks payment method", max_length=31, required=False)
    method_ach = forms.CharField(label="ACH → QuickBooks payment method", max_length=31, required=False)
    method_other = forms.CharField(label="Other → QuickBooks payment method", max_length=31, required=False)

    METHOD_FIELDS = ("cash", "check", "card", "ach", "other")

    def service_arguments(self) -> dict:
        """The form's data as desktop_connection_update takes it."""
        data = {name: value for name, value in self.cleaned_data.items() if not name.startswith("method_")}
        names = {key: self.cleaned_data[f"method_{key}"].strip() for key in self.METHOD_FIELDS}
        data["payment_method_names"] = {key: name for key, name in names.items() if name}
        return data

    def method_fields(self):
        return [self[f"method_{key}"] for key in self.METHOD_FIELDS]


class DesktopPasswordForm(forms.Form):
    password = forms.CharField(
        label="Web Connector password",
        widget=forms.PasswordInput(render_value=False),
        min_length=PASSWORD_MIN_LENGTH,
        max_length=200,
        strip=False,
    )
