"""Undo an export: the confirmation page (exactly what will be voided, checked against QuickBooks now), the POST that
starts it, and the page that follows it. Thin: the rules are in undo.py."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from billing.models import Payment
from billing.selectors import in_business_unit
from fieldsync.exceptions import ApplicationError
from quickbooks_export.models import ExportBatch, ExportUndo
from quickbooks_export.selectors import in_business_unit_companies
from quickbooks_export.undo import export_undo_plan, export_undo_start

EXPORT_PERMISSION = "quickbooks_export.export_payments"
export_required = permission_required(EXPORT_PERMISSION, raise_exception=True)


def _confirm(request: HttpRequest, *, subject: str, back: str, batch_id=None, payment_id=None) -> HttpResponse:
    if request.method == "POST":
        try:
            undo = export_undo_start(user=request.user, batch_id=batch_id, payment_id=payment_id)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect(request.path)
        return redirect("exports:undo_detail", undo_id=undo.pk)
    error, plan = "", None
    try:
        plan = export_undo_plan(batch_id=batch_id, payment_id=payment_id)
    except ApplicationError as exc:
        error = exc.message
    context = {"nav": "log", "subject": subject, "back": back, "plan": plan, "error": error}
    return render(request, "exports/undo_confirm.html", context, status=409 if error else 200)


@login_required
@export_required
@require_http_methods(["GET", "POST"])
def batch_undo(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(ExportBatch.objects.filter(in_business_unit_companies(request)), pk=batch_id)
    back = reverse("exports:batch_detail", kwargs={"batch_id": batch.pk})
    return _confirm(request, subject=f"Export #{batch.pk}", back=back, batch_id=batch.pk)


@login_required
@export_required
@require_http_methods(["GET", "POST"])
def payment_undo(request: HttpRequest, payment_id: int) -> HttpResponse:
    payment = get_object_or_404(in_business_unit(Payment.objects, request), pk=payment_id)
    back = reverse("exports:payment_detail", kwargs={"payment_id": payment.pk})
    return _confirm(request, subject=f"the export of payment #{payment.pk}", back=back, payment_id=payment.pk)


@login_required
@export_required
@require_GET
def undo_detail(request: HttpRequest, undo_id: int) -> HttpResponse:
    undos = ExportUndo.objects.filter(in_business_unit_companies(request))
    undo = get_object_or_404(undos.select_related("created_by"), pk=undo_id)
    return render(request, "exports/undo_detail.html", {"nav": "log", "undo": undo})
