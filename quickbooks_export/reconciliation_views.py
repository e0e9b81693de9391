"""The Reconciliation page: start a reconciliation of a date range, follow it, read its rows (discrepancies first)
and download them as CSV. Thin: the rules are in reconciliation.py. Viewing needs the export view permission;
starting one (it costs QuickBooks reads, which Intuit meters) needs the export permission."""

import csv
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from billing.selectors import business_unit_for_request
from fieldsync.exceptions import ApplicationError
from quickbooks_export.forms import ReconciliationForm
from quickbooks_export.models import ReconciliationRow, ReconciliationRun
from quickbooks_export.reconciliation import (
    NIGHTLY_DAYS,
    STALE_MESSAGE,
    Problem,
    reconciliation_is_stale,
    reconciliation_start,
)
from quickbooks_export.selectors import in_business_unit_companies

EXPORT_PERMISSION = "quickbooks_export.export_payments"
view_required = permission_required("quickbooks_export.view_exportbatch", raise_exception=True)
ROWS_PER_PAGE = 100
RUNS_LISTED = 20


@login_required
@view_required
@require_http_methods(["GET", "POST"])
def reconciliation_list(request: HttpRequest) -> HttpResponse:
    can_start = request.user.has_perm(EXPORT_PERMISSION)
    today = timezone.localdate()
    form = ReconciliationForm(
        request.POST or None, initial={"date_from": today - timedelta(days=NIGHTLY_DAYS - 1), "date_to": today}
    )
    status, busy_run_id = 200, None
    if request.method == "POST":
        if not can_start:
            raise PermissionDenied("Starting a reconciliation needs the permission to export payments.")
        if form.is_valid():
            try:
                run = reconciliation_start(
                    date_from=form.cleaned_data["date_from"],
                    date_to=form.cleaned_data["date_to"],
                    trigger=ReconciliationRun.Trigger.PAGE,
                    user=request.user,
                    business_unit=business_unit_for_request(request),
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
                busy_run_id = exc.extra.get("run_id")  # a run under way: the page links to it
            else:
                return redirect("exports:reconciliation_detail", run_id=run.pk)
        status = 409 if busy_run_id else 400
    runs = list(_runs(request).select_related("created_by").order_by("-created_at", "-id")[:RUNS_LISTED])
    for run in runs:
        run.stale = reconciliation_is_stale(run)
    context = {
        "nav": "reconciliation",
        "form": form,
        "runs": runs,
        "can_start": can_start,
        "busy_run_id": busy_run_id,
    }
    return render(request, "exports/reconciliation.html", context, status=status)


def _runs(request: HttpRequest) -> QuerySet[ReconciliationRun]:
    """The runs of the company of the business unit the pages act on: another unit's run is not there (404)."""
    return ReconciliationRun.objects.filter(in_business_unit_companies(request))


def _progress_context(run: ReconciliationRun) -> dict:
    """A run whose worker died (still "running" after STALE_AFTER) is shown as stopped, and not polled."""
    stale = reconciliation_is_stale(run)
    return {"run": run, "finished": run.finished or stale, "stale": stale, "stale_message": STALE_MESSAGE}


@login_required
@view_required
@require_GET
def reconciliation_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run: its totals, then its rows, discrepancies first, a page at a time (a fixed number of queries)."""
    run = get_object_or_404(_runs(request).select_related("created_by"), pk=run_id)
    page = Paginator(run.rows.order_by("ok", "id"), ROWS_PER_PAGE).get_page(request.GET.get("page"))
    labels = dict(Problem.choices)
    for row in page.object_list:
        row.problem_labels = [labels.get(code, code) for code in row.problems]
    context = {**_progress_context(run), "nav": "reconciliation", "page_obj": page, "rows": page.object_list}
    return render(request, "exports/reconciliation_detail.html", context)


@login_required
@view_required
@require_GET
def reconciliation_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The fragment the run's page polls every second until the run has finished."""
    run = get_object_or_404(_runs(request), pk=run_id)
    return render(request, "exports/_reconciliation_progress.html", _progress_context(run))


CSV_HEADER = [
    "Status",
    "Discrepancies",
    "Record",
    "Kind",
    "Customer",
    "Date",
    "QuickBooks Id",
    "FieldSync total",
    "QuickBooks total",
    "Balance expected in QuickBooks",
    "QuickBooks balance",
    "FieldSync links",
    "QuickBooks links",
    "Explanation",
]


def _cell(value) -> str:
    """Text a spreadsheet will not run as a formula (OWASP "CSV injection"): customer names are anyone's text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(run: ReconciliationRun):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    labels = dict(Problem.choices)
    rows = run.rows.order_by("ok", "id")
    for row in rows.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                "ok" if row.ok else "discrepancy",
                "; ".join(labels.get(code, code) for code in row.problems),
                _cell(row.label),
                row.get_kind_display(),
                _cell(row.customer),
                row.txn_date.isoformat() if row.txn_date else "",
                row.qbo_id,
                *("" if amount is None else f"{amount:.2f}" for amount in _amounts(row)),
                _cell(row.our_links),
                _cell(row.qbo_links),
                _cell(row.explanation),
            ]
        )


def _amounts(row: ReconciliationRow):
    return (row.our_amount, row.qbo_amount, row.our_balance, row.qbo_balance)


@login_required
@view_required
@require_GET
def reconciliation_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(_runs(request), pk=run_id)
    if run.state != ReconciliationRun.State.DONE:
        messages.error(request, "This reconciliation has no result to download.")
        return redirect("exports:reconciliation_detail", run_id=run.pk)
    response = StreamingHttpResponse(_csv_lines(run), content_type="text/csv; charset=utf-8")
    filename = f"reconciliation-{run.pk}-{run.date_from:%Y%m%d}-{run.date_to:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
