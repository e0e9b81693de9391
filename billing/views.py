"""Staff-page actions that write billing data: record a refund, mark a manual-handling item handled; and the switch
between business units in the header.

Both are posted with htmx from pages of quickbooks_export.staff_views (billing never imports quickbooks_export; the
pages are reached by URL name only). An error is shown in place, in the form that was posted; success reloads the
page, because a refund changes balances, the export status and the manual-handling count all at once.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from fieldsync.exceptions import ApplicationError

from . import services
from .forms import ManualItemHandledForm, RefundForm
from .models import ManualHandlingItem, Payment
from .money import format_money
from .selectors import BUSINESS_UNIT_SESSION_KEY, business_units_visible, in_business_unit

PAYMENT_PAGE = "exports:payment_detail"
MANUAL_PAGE = "exports:manual_items"


def _form_errors(form) -> str:
    return "; ".join(f"{form.fields[name].label or name}: {' '.join(errors)}" for name, errors in form.errors.items())


def _done(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@permission_required("billing.add_refund", raise_exception=True)
@require_POST
def refund_create(request: HttpRequest, payment_id: int) -> HttpResponse:
    payment = get_object_or_404(in_business_unit(Payment.objects.select_related("customer"), request), pk=payment_id)
    form = RefundForm(request.POST, payment=payment)
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            refund = services.refund_record(
                payment=payment,
                amount=data["amount"],
                reason=data["reason"],
                refunded_on=data["refunded_on"],
                method=data["method"],
                kind=data["kind"],
                invoice=data["invoice"],
                user=request.user,
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            message = f"Refund of {format_money(refund.amount, payment.currency)} recorded."
            if hasattr(refund, "manual_item"):
                message += f" {refund.quickbooks_status_label}: see Needs manual handling for exactly what to enter."
            messages.success(request, message)
            return _done(request, reverse(PAYMENT_PAGE, kwargs={"payment_id": payment.pk}))
    if not request.htmx:
        messages.error(request, error or f"The refund was not recorded: {_form_errors(form)}")
        return redirect(PAYMENT_PAGE, payment_id=payment.pk)
    context = {"payment": payment, "refund_form": form, "refund_error": error}
    return render(request, "billing/_refund_form.html", context, status=200)


@login_required
@permission_required("billing.change_manualhandlingitem", raise_exception=True)
@require_POST
def manual_item_mark_handled(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_object_or_404(
        in_business_unit(ManualHandlingItem.objects, request, field="payment__business_unit"), pk=item_id
    )
    form = ManualItemHandledForm(request.POST, auto_id=f"item{item.pk}_%s")
    error = ""
    if form.is_valid():
        try:
            services.manual_item_mark_handled(item=item, user=request.user, note=form.cleaned_data["note"])
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(request, f"Marked handled: refund of {format_money(item.amount)} to {item.customer}.")
            return _done(request, reverse(MANUAL_PAGE))
    if not request.htmx:
        messages.error(request, error or "Add a note saying what was done in QuickBooks.")
        return redirect(MANUAL_PAGE)
    context = {"item": item, "form": form, "error": error}
    return render(request, "billing/_manual_item_form.html", context)


@login_required
@require_POST
def business_unit_switch(request: HttpRequest) -> HttpResponse:
    """Act on another business unit (the header's switcher): remembered in the session; only a unit the user sees
    (another is a 404)."""
    unit_id = request.POST.get("business_unit", "")
    unit = business_units_visible(request.user).filter(pk=int(unit_id)).first() if unit_id.isdigit() else None
    if unit is None:
        raise Http404("No such business unit.")
    request.session[BUSINESS_UNIT_SESSION_KEY] = unit.pk
    # To the first page: the page it was chosen on may show one record of the unit left behind.
    return redirect("/")
