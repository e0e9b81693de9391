"""The "Changed in QuickBooks" page: each difference found by webhook or by the sweep, both versions side by side,
and a person's decision (POST + CSRF, audited). Thin: the rules are in changes.py."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.models import Payment
from fieldsync.exceptions import ApplicationError
from quickbooks_export.changes import RESENDABLE, accept_explained, change_resolve, details_side_by_side
from quickbooks_export.inbound import change_bring_in
from quickbooks_export.models import QuickBooksChange, QuickBooksMapping
from quickbooks_export.selectors import in_business_unit_companies

EXPORT_PERMISSION = "quickbooks_export.export_payments"
view_required = permission_required("quickbooks_export.view_exportbatch", raise_exception=True)
export_required = permission_required(EXPORT_PERMISSION, raise_exception=True)
LIMIT = 200


@login_required
@view_required
@require_GET
def change_list(request: HttpRequest) -> HttpResponse:
    """Open changes first, then the latest decided ones (one query, whatever the number)."""
    changes = QuickBooksChange.objects.filter(in_business_unit_companies(request))
    open_changes = list(changes.filter(state=QuickBooksChange.State.OPEN).order_by("-detected_at", "-id")[:LIMIT])
    decided = list(
        changes.filter(state=QuickBooksChange.State.RESOLVED)
        .select_related("resolved_by")
        .order_by("-resolved_at", "-id")[:50]
    )
    payment_keys = [int(c.local_key) for c in open_changes if c.kind == QuickBooksMapping.Kind.PAYMENT and c.local_key]
    # Payments recorded in QuickBooks are not FieldSync's to send (one query, whatever the number of rows).
    from_quickbooks = (
        {
            str(pk)
            for pk in Payment.objects.filter(pk__in=payment_keys, origin=Payment.Origin.QUICKBOOKS).values_list(
                "pk", flat=True
            )
        }
        if payment_keys
        else set()
    )
    for change in open_changes:
        change.resendable = (
            change.kind == QuickBooksMapping.Kind.PAYMENT
            and change.change in RESENDABLE
            and change.local_key not in from_quickbooks
        )
        change.acceptable, change.accept_explanation = accept_explained(change)
        change.bringable = change.change == QuickBooksChange.Change.RECORDED
        change.details = details_side_by_side(change) if change.change == QuickBooksChange.Change.DETAILS else []
    context = {
        "nav": "changes",
        "open_changes": open_changes,
        "decided": decided,
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
    }
    return render(request, "exports/changes.html", context)


@login_required
@export_required
@require_POST
def change_action(request: HttpRequest, change_id: int, resolution: str) -> HttpResponse:
    if QuickBooksChange.objects.filter(pk=change_id).exclude(in_business_unit_companies(request)).exists():
        raise Http404("No such change.")  # another business unit's
    note = request.POST.get("note", "")
    try:
        if resolution == QuickBooksChange.Resolution.BRING_IN:
            change = change_bring_in(change_id=change_id, user=request.user, note=note)
        else:
            change = change_resolve(change_id=change_id, resolution=resolution, user=request.user, note=note)
    except QuickBooksChange.DoesNotExist:
        messages.error(request, "That change is no longer listed.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{change.get_resolution_display()}: {change.get_kind_display()} {change.local_key}.")
    return redirect("exports:changes")
