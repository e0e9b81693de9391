from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.models import TaxRate
from billing.selectors import business_unit_for_request, job_types_of_unit
from fieldsync.exceptions import ApplicationError
from quickbooks_export.auto_export import auto_export_settings_get, auto_export_settings_update
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.company import (
    company_profile_get,
    company_profile_refresh,
    tax_code_mapping_update,
    unit_tracking_update,
)
from quickbooks_export.connection import (
    connection_authorization_cancel,
    connection_complete_authorization,
    connection_disconnect,
    connection_get_latest,
    connection_start_authorization,
    mapping_choices_get,
    mapping_settings_get,
    mapping_settings_update,
)
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.forms import (
    AutoExportForm,
    JobTypeTrackingForm,
    MappingSettingsForm,
    TaxCodeMappingForm,
    UnitTrackingForm,
)
from quickbooks_export.models import (
    PAYMENT_METHOD_KEYS,
    PAYMENT_METHOD_LABELS,
    QuickBooksTaxCodeMapping,
    QuickBooksUnitTracking,
)
from quickbooks_export.tracking import job_type_tracking_rows, job_type_tracking_update

MANAGE_PERMISSION = "quickbooks_export.manage_quickbooks_connection"
VIEW_PERMISSION = "quickbooks_export.view_quickbooksconnection"
manage_required = permission_required(MANAGE_PERMISSION, raise_exception=True)


def _tax_form(realm_id: str, profile, mapping, data=None) -> TaxCodeMappingForm | None:
    if profile is None:
        return None
    initial = {}
    if mapping is not None:
        initial = {"sales_tax_code": mapping.sales_tax_code_id, "no_tax_code": mapping.no_tax_code_id}
    for row in QuickBooksTaxCodeMapping.objects.filter(realm_id=realm_id):
        initial[f"rate_{row.tax_rate_id}"] = row.qbo_tax_code_id
    return TaxCodeMappingForm(
        data, initial=initial, tax_codes=profile.tax_codes, tax_rates=TaxRate.objects.filter(active=True)
    )


def _unit_tracking_form(profile, tracking, data=None) -> UnitTrackingForm | None:
    """None when the company is not read yet or tracks neither classes nor locations."""
    if profile is None or not (profile.tracks_classes or profile.track_departments):
        return None
    initial = {"class_id": tracking.class_id, "department_id": tracking.department_id} if tracking else {}
    return UnitTrackingForm(data, initial=initial, profile=profile)


def _job_type_tracking_form(profile, job_types, rows, data=None) -> JobTypeTrackingForm | None:
    """None when the company is not read yet, tracks neither classes nor locations, or the unit has no job types."""
    if profile is None or not (profile.tracks_classes or profile.track_departments) or not job_types:
        return None
    return JobTypeTrackingForm(
        data, initial=JobTypeTrackingForm.initial_from(rows), profile=profile, job_types=job_types
    )


def _render_settings(
    request,
    *,
    form: MappingSettingsForm | None = None,
    tax_form: TaxCodeMappingForm | None = None,
    tracking_form: UnitTrackingForm | None = None,
    job_type_form: JobTypeTrackingForm | None = None,
    auto_form: AutoExportForm | None = None,
    status: int = 200,
):
    connection = connection_get_latest(business_unit=business_unit_for_request(request))
    current = connection if connection is not None and connection.is_current else None
    mapping = mapping_settings_get(realm_id=current.realm_id) if current else None
    can_manage = request.user.has_perm(MANAGE_PERMISSION)
    choices_error = ""
    # Only people who may change the mapping need the live choices (two QuickBooks queries).
    if form is None and can_manage and current is not None and current.is_connected:
        try:
            form = MappingSettingsForm(
                choices=mapping_choices_get(client=QuickBooksClient(current)),
                initial=MappingSettingsForm.initial_from(mapping),
            )
        except QuickBooksError as exc:
            choices_error = exc.message
    payment_methods = {row.method: row for row in mapping.payment_methods.all()} if mapping else {}
    profile = company_profile_get(realm_id=current.realm_id) if current else None
    if tax_form is None and can_manage and current is not None:
        tax_form = _tax_form(current.realm_id, profile, mapping)
    tracking = (
        QuickBooksUnitTracking.objects.filter(
            realm_id=current.realm_id, business_unit_id=current.business_unit_id
        ).first()
        if current and profile
        else None
    )
    if tracking_form is None and can_manage and current is not None:
        tracking_form = _unit_tracking_form(profile, tracking)
    # The unit's job types and their choices: two queries, however many types (the lists live in the profile row).
    tracks_any = profile is not None and (profile.tracks_classes or profile.track_departments)
    job_types = list(job_types_of_unit(business_unit=current.business_unit_id)) if current and tracks_any else []
    job_type_rows = (
        job_type_tracking_rows(realm_id=current.realm_id, business_unit=current.business_unit_id) if job_types else {}
    )
    if job_type_form is None and can_manage and job_types:
        job_type_form = _job_type_tracking_form(profile, job_types, job_type_rows)
    auto = auto_export_settings_get(realm_id=current.realm_id) if current else None
    if auto_form is None and can_manage and auto is not None:
        auto_form = AutoExportForm(initial={"mode": auto.mode, "nightly_at": auto.nightly_at})
    context = {
        "auto": auto,
        "auto_form": auto_form,
        "profile": profile,
        "tax_form": tax_form,
        "tracking": tracking,
        "tracking_form": tracking_form,
        "job_type_form": job_type_form,
        "job_type_choices": [(job_type, job_type_rows.get(job_type.pk)) for job_type in job_types],
        "connection": connection,
        "current": current,
        "mapping": mapping,
        "mapping_payment_methods": [
            (PAYMENT_METHOD_LABELS[key], payment_methods.get(key)) for key in PAYMENT_METHOD_KEYS
        ],
        "form": form,
        "choices_error": choices_error,
        "can_manage": can_manage,
        # Chosen by FieldSync at connect time (no person has saved it yet): every choice says so until saved.
        "guessed": mapping is not None and mapping.updated_by_id is None,
    }
    return render(request, "quickbooks_export/settings.html", context, status=status)


@login_required
@require_GET
def settings_page(request):
    if not (request.user.has_perm(VIEW_PERMISSION) or request.user.has_perm(MANAGE_PERMISSION)):
        raise PermissionDenied
    return _render_settings(request)


@login_required
@manage_required
@require_POST  # starting OAuth changes state (the session's OAuth state); a link or an image must not start it
def connect(request):
    try:
        url = connection_start_authorization(request=request, business_unit=business_unit_for_request(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("quickbooks_export:settings")
    return redirect(url)


def _authorization_refused_message(error: str) -> str:
    """What Intuit's `error` on the OAuth redirect means for the person who pressed Connect (RFC 6749 §4.1.2.1)."""
    if error == "access_denied":
        return (
            "QuickBooks was not connected: the connection was cancelled on Intuit's page (or the QuickBooks user "
            "may not connect apps). Nothing changed. Press “Connect to QuickBooks” to try again, signed in to "
            "QuickBooks as a company administrator."
        )
    return (
        "QuickBooks was not connected: Intuit's page stopped with a problem and nothing changed. Try “Connect to "
        f"QuickBooks” again; if it happens again, tell your administrator that Intuit answered “{error[:60]}”."
    )


@login_required
@manage_required
@require_GET
def callback(request):
    if request.GET.get("error"):
        connection_authorization_cancel(request=request)
        messages.warning(request, _authorization_refused_message(request.GET["error"]))
        return redirect("quickbooks_export:settings")
    try:
        connection = connection_complete_authorization(
            request=request,
            code=request.GET.get("code", ""),
            state=request.GET.get("state", ""),
            realm_id=request.GET.get("realmId", ""),
            user=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("quickbooks_export:settings")
    messages.success(request, f"Connected to QuickBooks company {connection.company_name or connection.realm_id}.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def disconnect(request):
    try:
        connection = connection_disconnect(user=request.user, business_unit=business_unit_for_request(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("quickbooks_export:settings")
    if connection.last_error:
        messages.warning(request, connection.last_error)
    else:
        messages.success(request, f"Disconnected from {connection.company_name or 'QuickBooks'}.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def mapping_update(request):
    connection = connection_get_latest(business_unit=business_unit_for_request(request))
    if connection is None or not connection.is_current:
        messages.error(request, "Connect QuickBooks before choosing the mapping.")
        return redirect("quickbooks_export:settings")
    try:
        choices = mapping_choices_get(client=QuickBooksClient(connection))
    except QuickBooksError as exc:
        messages.error(request, exc.message)
        return redirect("quickbooks_export:settings")
    form = MappingSettingsForm(request.POST, choices=choices)
    if not form.is_valid():
        return _render_settings(request, form=form, status=400)
    mapping_settings_update(
        realm_id=connection.realm_id,
        user=request.user,
        deposit_account=form.cleaned_data["deposit_account"],
        income_account=form.cleaned_data["income_account"],
        payment_methods=form.cleaned_data["payment_methods"],
        record_refunds_for_me=form.cleaned_data["record_refunds_for_me"],
        customer_details_winner=form.cleaned_data["customer_details_winner"],
        bring_in_quickbooks_payments=form.cleaned_data["bring_in_quickbooks_payments"],
    )
    messages.success(request, "QuickBooks mapping saved.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def company_refresh(request):
    """Read the company's country, currency, preferences and tax codes again (three QuickBooks reads)."""
    try:
        profile = company_profile_refresh(
            client=QuickBooksClient.for_current_connection(business_unit=business_unit_for_request(request))
        )
    except QuickBooksError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Read the QuickBooks company again: {profile.describe()}.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def tax_codes_update(request):
    connection = connection_get_latest(business_unit=business_unit_for_request(request))
    if connection is None or not connection.is_current:
        messages.error(request, "Connect QuickBooks before choosing tax codes.")
        return redirect("quickbooks_export:settings")
    profile = company_profile_get(realm_id=connection.realm_id)
    form = _tax_form(connection.realm_id, profile, mapping_settings_get(realm_id=connection.realm_id), request.POST)
    if form is None:
        messages.error(request, "Read the QuickBooks company first (Refresh), then choose its tax codes.")
        return redirect("quickbooks_export:settings")
    if not form.is_valid():
        return _render_settings(request, tax_form=form, status=400)
    try:
        tax_code_mapping_update(
            realm_id=connection.realm_id,
            user=request.user,
            sales_tax_code_id=form.cleaned_data["sales_tax_code"],
            no_tax_code_id=form.cleaned_data["no_tax_code"],
            per_rate=form.per_rate(),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Tax codes saved.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def job_type_tracking_update_view(request):
    """Save, per job type of the unit, the QuickBooks class and location its jobs' invoices carry instead of the
    unit's (chosen from the lists read with the company)."""
    business_unit = business_unit_for_request(request)
    connection = connection_get_latest(business_unit=business_unit)
    if connection is None or not connection.is_current:
        messages.error(request, "Connect QuickBooks before choosing a class or location.")
        return redirect("quickbooks_export:settings")
    profile = company_profile_get(realm_id=connection.realm_id)
    job_types = list(job_types_of_unit(business_unit=connection.business_unit_id))
    form = _job_type_tracking_form(profile, job_types, {}, request.POST)
    if form is None:
        messages.error(
            request,
            "This QuickBooks company tracks neither classes nor locations, or the unit has no job types (read the "
            "company again first).",
        )
        return redirect("quickbooks_export:settings")
    if not form.is_valid():
        return _render_settings(request, job_type_form=form, status=400)
    try:
        job_type_tracking_update(
            realm_id=connection.realm_id,
            business_unit=connection.business_unit,
            user=request.user,
            choices=form.choices(),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Class and location per job type saved.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def unit_tracking_update_view(request):
    """Save the QuickBooks class and location of the unit's invoices (chosen from the lists read with the company)."""
    connection = connection_get_latest(business_unit=business_unit_for_request(request))
    if connection is None or not connection.is_current:
        messages.error(request, "Connect QuickBooks before choosing a class or location.")
        return redirect("quickbooks_export:settings")
    profile = company_profile_get(realm_id=connection.realm_id)
    form = _unit_tracking_form(profile, None, request.POST)
    if form is None:
        messages.error(request, "This QuickBooks company tracks neither classes nor locations (read it again first).")
        return redirect("quickbooks_export:settings")
    if not form.is_valid():
        return _render_settings(request, tracking_form=form, status=400)
    try:
        unit_tracking_update(
            realm_id=connection.realm_id,
            business_unit=connection.business_unit,
            user=request.user,
            class_id=form.cleaned_data.get("class_id", ""),
            department_id=form.cleaned_data.get("department_id", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Class and location saved.")
    return redirect("quickbooks_export:settings")


@login_required
@manage_required
@require_POST
def auto_export_update(request):
    connection = connection_get_latest(business_unit=business_unit_for_request(request))
    if connection is None or not connection.is_current:
        messages.error(request, "Connect QuickBooks before choosing automatic export.")
        return redirect("quickbooks_export:settings")
    form = AutoExportForm(request.POST)
    if not form.is_valid():
        return _render_settings(request, auto_form=form, status=400)
    row = auto_export_settings_update(
        realm_id=connection.realm_id,
        mode=form.cleaned_data["mode"],
        nightly_at=form.cleaned_data["nightly_at"],
        user=request.user,
    )
    messages.success(request, f"Automatic export: {_auto_words(row)}.")
    return redirect("quickbooks_export:settings")


def _auto_words(row) -> str:
    if row.mode == row.Mode.NIGHTLY:
        return f"every night at {row.nightly_at:%H:%M}"
    return {
        row.Mode.OFF: "off",
        row.Mode.WHEN_PAID: "as soon as an invoice is fully paid",
        row.Mode.HOURLY: "every hour",
    }[row.mode]
