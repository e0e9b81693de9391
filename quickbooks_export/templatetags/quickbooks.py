"""Template tags that let billing's pages say where a record stands in QuickBooks without billing importing the
export app (templates name the tag library; billing's Python code never sees quickbooks_export)."""

from django import template

from quickbooks_export import history
from quickbooks_export.models import QuickBooksMapping

register = template.Library()


@register.inclusion_tag("quickbooks_export/_customer_status.html")
def quickbooks_customer_status(customer) -> dict:
    """Whether the customer is in QuickBooks yet, and under which name: one query."""
    mapping = (
        QuickBooksMapping.objects.filter(kind=QuickBooksMapping.Kind.CUSTOMER, local_key=str(customer.pk))
        .order_by("-id")
        .first()
    )
    return {"customer": customer, "mapping": mapping}


@register.filter
def error_code_words(code: str) -> str:
    """ "QuickBooks error 6140" for QuickBooks' codes, "FieldSync check “invoice_conflict”" for ours."""
    return history.error_code_words(code or "")
