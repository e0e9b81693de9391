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


class DesktopPasswordForm(forms.Form):
    password = forms.CharField(
        label="Web Connector password",
        widget=forms.PasswordInput(render_value=False),
        min_length=PASSWORD_MIN_LENGTH,
        max_length=200,
        strip=False,
    )
