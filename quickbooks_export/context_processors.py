from dataclasses import dataclass, field

from django.db.models import FilteredRelation, Q
from django.utils.functional import SimpleLazyObject

from billing.selectors import BUSINESS_UNIT_SESSION_KEY, business_units_visible
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


@dataclass(frozen=True)
class BusinessUnitMenu:
    """The header's unit switcher: the units the user sees, and the one the pages act on. Shown from two units on."""

    units: list[dict] = field(default_factory=list)  # {"pk", "name"}
    current_pk: int | None = None

    @property
    def several(self) -> bool:
        return len(self.units) > 1


def _header(request) -> tuple[QuickBooksStatus, BusinessUnitMenu]:
    """One query: the units the user sees, each with its current connection. The unit the pages act on is picked as
    billing.selectors.business_unit_chosen picks it (the session's, else the first by name)."""
    cached = getattr(request, "_quickbooks_header", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return QuickBooksStatus(state=""), BusinessUnitMenu()
    rows = list(
        business_units_visible(user)
        .annotate(
            current=FilteredRelation("quickbooks_connections", condition=Q(quickbooks_connections__is_current=True))
        )
        .order_by("name", "pk")
        .values("pk", "name", "current__state", "current__company_name", "current__realm_id")
    )
    chosen = getattr(request, "session", {}).get(BUSINESS_UNIT_SESSION_KEY)
    row = next((r for r in rows if r["pk"] == chosen), rows[0] if rows else None)
    status = (
        QuickBooksStatus(
            state=row["current__state"], company_name=row["current__company_name"], realm_id=row["current__realm_id"]
        )
        if row is not None and row["current__state"]
        else QuickBooksStatus(state="")
    )
    menu = BusinessUnitMenu(units=[{"pk": r["pk"], "name": r["name"]} for r in rows], current_pk=row and row["pk"])
    request._quickbooks_header = status, menu
    return status, menu


def quickbooks_connection(request):
    """`quickbooks_status` and `business_unit_menu` for every template: evaluated on first use, at most one small
    query per request for both."""
    return {
        "quickbooks_status": SimpleLazyObject(lambda: _header(request)[0]),
        "business_unit_menu": SimpleLazyObject(lambda: _header(request)[1]),
    }
