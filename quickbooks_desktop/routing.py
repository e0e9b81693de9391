"""Which QuickBooks an export goes to: the one seam the pages and the API call.

Each function has the signature of its QuickBooks Online namesake in quickbooks_export.services. When the
installation exports to QuickBooks Desktop (DesktopConnection.use_desktop), the request is recorded as a Desktop
batch that the Web Connector works through at its next run; otherwise it goes to the Online engine unchanged.
"""

from billing import selectors as billing_selectors
from billing.models import Payment
from fieldsync.exceptions import ApplicationError
from quickbooks_export import services as online
from quickbooks_export.models import ExportBatch, ExportBatchItem

from . import services as desktop

ExportStatus = Payment.ExportStatus


def export_batch_start(*, payments, selection: str, user=None, api_client=None, source=ExportBatch.Source.PAGE):
    if desktop.desktop_is_target():
        return desktop.desktop_export_batch_start(
            payments=payments, selection=selection, user=user, api_client=api_client, source=source
        )
    return online.export_batch_start(
        payments=payments, selection=selection, user=user, api_client=api_client, source=source
    )


def export_payment_start(*, payment_id: int, user=None, api_client=None, source=ExportBatch.Source.PAGE):
    return export_batch_start(
        payments=[payment_id], selection=f"payment #{payment_id}", user=user, api_client=api_client, source=source
    )


def export_invoice_start(*, invoice_id: int, user=None, api_client=None, source=ExportBatch.Source.PAGE):
    """An invoice with nothing to pay, on its own: QuickBooks Online only (the Desktop engine posts payments)."""
    if desktop.desktop_is_target():
        raise ApplicationError(
            "This installation exports to QuickBooks Desktop, which FieldSync sends payments only: enter an invoice "
            "with nothing to pay in QuickBooks Desktop by hand.",
            code="desktop_payments_only",
        )
    return online.export_invoice_start(invoice_id=invoice_id, user=user, api_client=api_client, source=source)


def export_all_exportable_start(*, user=None, api_client=None, source=ExportBatch.Source.PAGE, business_unit=None):
    if not desktop.desktop_is_target():
        # Online also takes the invoices with nothing to pay, on their own; each unit its own company.
        return online.export_all_exportable_start(
            user=user, api_client=api_client, source=source, business_unit=business_unit
        )
    candidates = billing_selectors.payment_filter_exportable(Payment.objects.filter(export_status__in=online.QUEUEABLE))
    return export_batch_start(
        payments=candidates, selection="everything exportable", user=user, api_client=api_client, source=source
    )


def export_batch_retry_failed(*, batch_id: int, user=None, api_client=None):
    if not desktop.desktop_is_target():
        return online.export_batch_retry_failed(batch_id=batch_id, user=user, api_client=api_client)
    failed = Payment.objects.filter(
        export_items__batch_id=batch_id,
        export_items__outcome=ExportBatchItem.Outcome.FAILED,
        export_status=ExportStatus.FAILED,
    )
    if not failed.exists():
        raise ApplicationError(f"Batch #{batch_id} has no failed payments left to retry.", code="nothing_to_retry")
    return export_batch_start(
        payments=failed,
        selection=f"retry of the failed payments of batch #{batch_id}",
        user=user,
        api_client=api_client,
        source=ExportBatch.Source.RETRY,
    )


def export_payment_retry(*, payment_id: int, user=None, api_client=None):
    if not desktop.desktop_is_target():
        return online.export_payment_retry(payment_id=payment_id, user=user, api_client=api_client)
    payment = Payment.objects.get(pk=payment_id)
    if payment.export_status != ExportStatus.FAILED:
        raise ApplicationError(
            f"Payment #{payment_id} is {payment.get_export_status_display().lower()}, not failed.", code="not_failed"
        )
    return export_batch_start(
        payments=[payment_id],
        selection=f"retry of payment #{payment_id}",
        user=user,
        api_client=api_client,
        source=ExportBatch.Source.RETRY,
    )
