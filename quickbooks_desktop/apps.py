from django.apps import AppConfig


class QuickbooksDesktopConfig(AppConfig):
    name = "quickbooks_desktop"
    verbose_name = "QuickBooks Desktop"
