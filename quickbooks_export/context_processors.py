from dataclasses import dataclass

from django.utils.functional import SimpleLazyObject

from billing.selectors import business_unit_chosen
from quickbooks_export.models import QuickBooksConnection


@dataclass(frozen=True)
class QuickBooksStatus:
    """What every page needs to know about the QuickBooks connection of the business unit it shows (no tokens)."""

    state: str  # a QuickBooksConnection.State value, or "" when nothing is connected
    company_name: str = ""
    realm_id: str = ""

    @property
    def is_connected(self) -> bool:
        return self.state == QuickBooksConnection.State.CONNECTED

    @property
    def needs_reconnect(self) -> bool:
        return self.state == QuickBooksConnection.State.NEEDS_RECONNECT


def _status(request) -> QuickBooksStatus:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return QuickBooksStatus(state="")
    row = (
        QuickBooksConnection.objects.filter(is_current=True, business_unit__in=business_unit_chosen(request))
        .values("state", "company_name", "realm_id")
        .first()
    )
    return QuickBooksStatus(**row) if row else QuickBooksStatus(state="")


def quickbooks_connection(request):
    """`quickbooks_status` for every template: evaluated on first use, at most one small query per request."""
    return {"quickbooks_status": SimpleLazyObject(lambda: _status(request))}
