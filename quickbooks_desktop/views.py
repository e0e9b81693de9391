"""The Web Connector's SOAP endpoint and the QuickBooks Desktop staff page.

The endpoint has no login: the Web Connector authenticates with its user name and password (authenticate) and then
carries a ticket bound to that session. It is CSRF-exempt because it is called by a program, not a browser, and reads
nothing from cookies. The staff page needs a signed-in user with the view permission; every change is a POST with
CSRF and needs `manage_desktop_connection`.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from fieldsync.exceptions import ApplicationError

from . import services, soap
from .forms import DesktopPasswordForm, DesktopSettingsForm
from .models import DEFAULT_PAYMENT_METHODS

logger = logging.getLogger(__name__)

MANAGE_PERMISSION = "quickbooks_desktop.manage_desktop_connection"
VIEW_PERMISSION = "quickbooks_desktop.view_desktopconnection"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_SOAP_BYTES = 20 * 1024 * 1024  # a qbXML answer for 30 objects is tens of kilobytes


def _call(operation: str, p: dict[str, str]):
    if operation == "serverVersion":
        return services.SERVER_VERSION
    if operation == "clientVersion":
        return ""  # any Web Connector version is fine
    if operation == "authenticate":
        return services.qbwc_authenticate(username=p["strUserName"], password=p["strPassword"])
    if operation == "sendRequestXML":
        return services.qbwc_send_request(
            ticket=p["ticket"],
            company_file=p["strCompanyFileName"],
            country=p["qbXMLCountry"],
            major_version=p["qbXMLMajorVers"],
            minor_version=p["qbXMLMinorVers"],
        )
    if operation == "receiveResponseXML":
        return services.qbwc_receive_response(
            ticket=p["ticket"], response=p["response"], hresult=p["hresult"], message=p["message"]
        )
    if operation == "connectionError":
        return services.qbwc_connection_error(ticket=p["ticket"], hresult=p["hresult"], message=p["message"])
    if operation == "getLastError":
        return services.qbwc_get_last_error(ticket=p["ticket"])
    return services.qbwc_close_connection(ticket=p["ticket"])


@csrf_exempt
@require_http_methods(["GET", "POST"])
def qbwc_endpoint(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        if "wsdl" in request.GET:
            return HttpResponse(soap.wsdl(request.build_absolute_uri(request.path)), content_type=SOAP_CONTENT_TYPE)
        return HttpResponse("FieldSync's QuickBooks Web Connector endpoint.\n", content_type="text/plain")
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_SOAP_BYTES:
        return HttpResponse(soap.build_fault("The request is too large."), status=413, content_type=SOAP_CONTENT_TYPE)
    try:
        operation, parameters = soap.parse_call(request.body)
    except soap.SoapFault as fault:
        return HttpResponse(soap.build_fault(fault.message), status=500, content_type=SOAP_CONTENT_TYPE)
    try:
        result = _call(operation, parameters)
    except Exception:
        # Never leave the Web Connector without an answer it understands; the traceback goes to our logs only.
        logger.exception("QuickBooks Web Connector call %s failed", operation)
        return HttpResponse(
            soap.build_fault("FieldSync could not handle this call; it has been logged.", client=False),
            status=500,
            content_type=SOAP_CONTENT_TYPE,
        )
    return HttpResponse(soap.build_result(operation, result), content_type=SOAP_CONTENT_TYPE)


# --- The staff page -----------------------------------------------------------------------------------------------


def _endpoint_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("quickbooks_desktop:qbwc"))


@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
@require_GET
def desktop_page(request: HttpRequest) -> HttpResponse:
    status = services.desktop_status()
    connection = status.connection
    initial = {
        "use_desktop": connection.use_desktop if connection else False,
        "username": connection.username if connection else "fieldsync",
        "income_account_name": connection.income_account_name if connection else "Services",
        "deposit_account_name": connection.deposit_account_name if connection else "",
        "run_every_minutes": connection.run_every_minutes if connection else 15,
        **{
            f"method_{key}": (connection.payment_method_names if connection else DEFAULT_PAYMENT_METHODS).get(key, "")
            for key in DesktopSettingsForm.METHOD_FIELDS
        },
    }
    return render(
        request,
        "quickbooks_desktop/desktop.html",
        {
            "status": status,
            "connection": connection,
            "endpoint_url": _endpoint_url(request),
            "settings_form": DesktopSettingsForm(initial=initial),
            "password_form": DesktopPasswordForm(),
            "can_manage": request.user.has_perm(MANAGE_PERMISSION),
            "nav": "desktop",
        },
    )


@login_required
@permission_required(MANAGE_PERMISSION, raise_exception=True)
@require_POST
def desktop_settings(request: HttpRequest) -> HttpResponse:
    form = DesktopSettingsForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            messages.error(request, f"{label}: {' '.join(errors)}" if label else " ".join(errors))
        return redirect("quickbooks_desktop:page")
    try:
        services.desktop_connection_update(**form.service_arguments())
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "QuickBooks Desktop settings saved.")
    return redirect("quickbooks_desktop:page")


@login_required
@permission_required(MANAGE_PERMISSION, raise_exception=True)
@require_POST
def desktop_password(request: HttpRequest) -> HttpResponse:
    form = DesktopPasswordForm(request.POST)
    try:
        if not form.is_valid():
            raise services.DesktopSetupError(" ".join(form.errors.get("password", ["Enter a password."])))
        services.desktop_password_set(password=form.cleaned_data["password"])
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Web Connector password set. Type the same password into the Web Connector.")
    return redirect("quickbooks_desktop:page")


@login_required
@permission_required(MANAGE_PERMISSION, raise_exception=True)
@require_POST
def desktop_forget_company(request: HttpRequest) -> HttpResponse:
    try:
        services.desktop_company_forget()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The next Web Connector run may come from another company file.")
    return redirect("quickbooks_desktop:page")


@login_required
@permission_required(MANAGE_PERMISSION, raise_exception=True)
@require_GET
def desktop_qwc(request: HttpRequest) -> HttpResponse:
    connection = services.desktop_connection_get()
    if connection is None:
        messages.error(request, "Save the QuickBooks Desktop settings first.")
        return redirect("quickbooks_desktop:page")
    try:
        text = services.qwc_file(
            connection=connection,
            app_url=_endpoint_url(request),
            support_url=request.build_absolute_uri(reverse("quickbooks_desktop:page")),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("quickbooks_desktop:page")
    response = HttpResponse(text, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="fieldsync.qwc"'
    return response
