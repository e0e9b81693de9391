from django.apps import AppConfig


class QuickbooksExportConfig(AppConfig):
    name = "quickbooks_export"
    verbose_name = "QuickBooks export"
