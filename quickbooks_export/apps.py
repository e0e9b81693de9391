from django.apps import AppConfig


class QuickbooksExportConfig(AppConfig):
    name = "quickbooks_export"
    verbose_name = "QuickBooks export"

    def ready(self):
        # Billing never imports this app: it tells whoever listens when an invoice becomes fully paid or a customer
        # changes.
        from billing import hooks

        from .auto_export import invoice_paid_listener
        from .invoice_updates import invoice_changed_listener
        from .updates import customer_changed_listener
        from .voids import invoice_voided_listener

        hooks.invoice_paid_listen(invoice_paid_listener)
        hooks.customer_changed_listen(customer_changed_listener)
        hooks.invoice_voided_listen(invoice_voided_listener)
        hooks.invoice_changed_listen(invoice_changed_listener)
