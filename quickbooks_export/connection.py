"""Services and selectors for the QuickBooks connection (OAuth) and the per-company mapping settings.

Network calls to QuickBooks always happen outside database transactions; each write commits in its own short
transaction. (`services.py` in this app belongs to the export engine.)
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing.models import BusinessUnit
from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError, ConflictError
from quickbooks_export import client as qbo
from quickbooks_export.errors import QuickBooksError, QuickBooksNotConnectedError
from quickbooks_export.models import (
    PAYMENT_METHOD_KEYS,
    QuickBooksConnection,
    QuickBooksMappingSettings,
    QuickBooksPaymentMethodMapping,
)

logger = logging.getLogger(__name__)

OAUTH_STATE_SESSION_KEY = "quickbooks_oauth_state"
OAUTH_STATE_MAX_AGE_SECONDS = 30 * 60
DEPOSIT_ACCOUNT_TYPES = ("Bank", "Other Current Asset")
INCOME_ACCOUNT_TYPE = "Income"
_REALM_ID = re.compile(r"^[0-9A-Za-z-]{1,32}$")


class OAuthStateError(ApplicationError):
    code = "quickbooks_oauth_state"
    http_status = 400


# --- connection: selectors ------------------------------------------------------------------------------------------
def connection_get_current(*, business_unit: BusinessUnit | None = None) -> QuickBooksConnection | None:
    """The connection the exports of `business_unit` use (connected or needing reconnection), or None.

    Without a unit: the only unit's (see billing.services.business_unit_default; raises ApplicationError with code
    business_unit_required when there are several, so a caller that forgot the unit never picks another's company)."""
    unit = business_unit or business_unit_default()
    return (
        QuickBooksConnection.objects.select_related("connected_by").filter(is_current=True, business_unit=unit).first()
    )


def connection_get_latest(*, business_unit: BusinessUnit | None = None) -> QuickBooksConnection | None:
    """The unit's current connection, else its most recently disconnected one (for showing history), else None."""
    return (
        QuickBooksConnection.objects.select_related("connected_by", "disconnected_by")
        .filter(business_unit=business_unit or business_unit_default())
        .order_by("-is_current", "-connected_at", "-pk")
        .first()
    )


# --- connection: OAuth flow -----------------------------------------------------------------------------------------
def connection_start_authorization(*, request, business_unit: BusinessUnit | None = None) -> str:
    """Start connecting `business_unit` (default: the only unit): remember a fresh single-use `state`, and the unit it
    is for, in the session and return QuickBooks' authorize URL. The unit travels with the state, never in the URL,
    so the answer connects the unit the person chose, whatever they switch to meanwhile.

    Raises QuickBooksUnavailableError when QuickBooks' discovery document cannot be read.
    """
    unit = business_unit or business_unit_default()
    state = secrets.token_urlsafe(32)
    url = qbo.authorization_url(state=state)
    request.session[OAUTH_STATE_SESSION_KEY] = {
        "state": state,
        "issued_at": int(time.time()),
        "business_unit_id": unit.pk,
    }
    return url


def _pop_expected_state(request) -> tuple[str, int | None] | None:
    saved = request.session.pop(OAUTH_STATE_SESSION_KEY, None)
    if not isinstance(saved, dict) or not saved.get("state"):
        return None
    if time.time() - int(saved.get("issued_at") or 0) > OAUTH_STATE_MAX_AGE_SECONDS:
        return None
    return str(saved["state"]), saved.get("business_unit_id")


def connection_authorization_cancel(*, request) -> None:
    """QuickBooks redirected back without approval (e.g. error=access_denied): forget the pending state."""
    request.session.pop(OAUTH_STATE_SESSION_KEY, None)


def connection_complete_authorization(*, request, code: str, state: str, realm_id: str, user) -> QuickBooksConnection:
    """Finish connecting after QuickBooks redirects back with `code`, `state` and `realmId`.

    Checks `state` against the one stored in the session (single use, 30 minutes); a bad or missing state raises
    OAuthStateError and changes nothing. Refuses a different company while one is current (disconnect first).
    Exchanges the code (network), stores the tokens (encrypted) in a short transaction, then reads the company name
    and, for a company connected for the first time, fills default mapping settings (network; failures there are
    logged and kept in `last_error`, the connection stays). Connects the unit the state was issued for; other units'
    connections are never touched, and a company current in another unit is refused.
    """
    expected = _pop_expected_state(request)
    if not state or expected is None or not secrets.compare_digest(str(state), expected[0]):
        raise OAuthStateError(
            "The answer from QuickBooks did not match a connection request from this browser session (missing, "
            "expired or wrong state), so it was ignored. Start again with Connect."
        )
    if not code or not realm_id or not _REALM_ID.match(realm_id):
        raise ApplicationError("QuickBooks did not send an authorization code and company id; start again.")
    unit = BusinessUnit.objects.filter(pk=expected[1]).first() if expected[1] else business_unit_default()
    if unit is None:
        raise OAuthStateError("The business unit this connection was started for no longer exists; start again.")
    _refuse_other_company(realm_id, unit)

    tokens = qbo.exchange_code(code=code, realm_id=realm_id)
    try:
        connection = _connection_store_tokens(realm_id=realm_id, tokens=tokens, user=user, business_unit=unit)
    except ConflictError:
        _revoke_quietly(tokens.refresh_token)
        raise

    _connection_read_company(connection)
    try:
        mapping_settings_ensure_defaults(connection=connection)
    except QuickBooksError as exc:
        logger.warning("Could not fill default QuickBooks mapping for realm %s: %s", realm_id, exc.code)
    try:  # what kind of company it is (country, currency, tax), shown on the QuickBooks page; exports re-read it
        from .company import company_profile_refresh

        company_profile_refresh(client=qbo.QuickBooksClient(connection))
    except QuickBooksError as exc:
        logger.warning("Could not read the company profile of realm %s: %s", realm_id, exc.code)
    connection.refresh_from_db()
    return connection


def _refuse_other_company(
    realm_id: str, business_unit: BusinessUnit, current: QuickBooksConnection | None = None
) -> None:
    current = current or connection_get_current(business_unit=business_unit)
    if current is not None and current.realm_id != realm_id:
        raise ConflictError(
            f"{business_unit} is connected to {current.company_name or 'another QuickBooks company'} "
            f"(realm {current.realm_id}). Disconnect it before connecting a different company.",
            code="quickbooks_other_company",
        )
    # Mappings, settings, limits and the export log are the company's: two units sharing one would mix their books.
    elsewhere = (
        QuickBooksConnection.objects.filter(is_current=True, realm_id=realm_id)
        .exclude(business_unit=business_unit)
        .select_related("business_unit")
        .first()
    )
    if elsewhere is not None:
        raise ConflictError(
            f"{elsewhere.company_name or 'This QuickBooks company'} (realm {realm_id}) is connected to "
            f"{elsewhere.business_unit}; each business unit keeps its own QuickBooks company.",
            code="quickbooks_company_in_other_unit",
        )


@transaction.atomic
def _connection_store_tokens(
    *, realm_id: str, tokens: qbo.TokenSet, user, business_unit: BusinessUnit
) -> QuickBooksConnection:
    current = (
        QuickBooksConnection.objects.select_for_update().filter(is_current=True, business_unit=business_unit).first()
    )
    _refuse_other_company(realm_id, business_unit, current)
    now = timezone.now()
    connection = current or QuickBooksConnection(realm_id=realm_id, business_unit=business_unit)
    # Reconnecting the current company keeps its row (and bumps the token version, so a worker that refreshed
    # from the old tokens will not overwrite these).
    connection.transition_to(QuickBooksConnection.State.CONNECTED)
    connection.connected_at = now
    connection.connected_by = user
    connection.last_error = ""
    connection.last_error_at = None
    connection.set_tokens(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        access_expires_in=tokens.expires_in,
        refresh_expires_in=tokens.refresh_expires_in,
        now=now,
    )
    connection.full_clean()
    connection.save()
    logger.info("QuickBooks realm %s connected by user %s", realm_id, getattr(user, "pk", None))
    return connection


def _connection_read_company(connection: QuickBooksConnection) -> None:
    try:
        info = qbo.QuickBooksClient(connection).company_info()
    except QuickBooksError as exc:
        logger.warning("Could not read the QuickBooks company name for realm %s: %s", connection.realm_id, exc.code)
        QuickBooksConnection.objects.filter(pk=connection.pk).update(
            last_error=f"Connected, but the company name could not be read: {exc.message}",
            last_error_at=timezone.now(),
        )
        return
    name = str(info.get("CompanyName") or info.get("LegalName") or "")[:255]
    QuickBooksConnection.objects.filter(pk=connection.pk).update(company_name=name, updated_at=timezone.now())


def connection_disconnect(*, user, business_unit: BusinessUnit | None = None) -> QuickBooksConnection:
    """Revoke FieldSync's authorization at QuickBooks (best effort) and mark the unit's current connection
    disconnected (default: the only unit's; other units' connections are untouched).

    The tokens are wiped; the row stays as history. If QuickBooks could not confirm the revocation, the connection
    is disconnected anyway and `last_error` says so. Raises QuickBooksNotConnectedError when nothing is connected.
    """
    current = connection_get_current(business_unit=business_unit)
    if current is None:
        raise QuickBooksNotConnectedError("QuickBooks is not connected; there is nothing to disconnect.")
    revoke_problem = ""
    try:
        refresh_token = current.get_refresh_token()
    except ApplicationError:
        refresh_token = ""
        revoke_problem = "the stored token could not be decrypted, so it was not revoked at QuickBooks"
    if refresh_token:
        try:
            qbo.revoke_token(token=refresh_token)
        except QuickBooksError as exc:
            revoke_problem = f"QuickBooks did not confirm the revocation ({exc.message})"
            logger.warning("Revoking the QuickBooks authorization for realm %s failed: %s", current.realm_id, exc.code)

    with transaction.atomic():
        row = QuickBooksConnection.objects.select_for_update().get(pk=current.pk)
        if row.state == QuickBooksConnection.State.DISCONNECTED:
            return row
        row.transition_to(QuickBooksConnection.State.DISCONNECTED)
        row.disconnected_at = timezone.now()
        row.disconnected_by = user
        row.clear_tokens()  # also bumps token_version: a refresh in flight will not store its tokens
        row.last_error = (
            f"Disconnected, but {revoke_problem}. Remove FieldSync from the company's connected apps in QuickBooks."
            if revoke_problem
            else ""
        )
        row.last_error_at = timezone.now() if revoke_problem else None
        row.full_clean()
        row.save()
    logger.info("QuickBooks realm %s disconnected by user %s", row.realm_id, getattr(user, "pk", None))
    return row


def _revoke_quietly(token: str) -> None:
    try:
        qbo.revoke_token(token=token)
    except QuickBooksError as exc:
        logger.warning("Could not revoke an unused QuickBooks authorization: %s", exc.code)


# --- mapping settings -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QboChoice:
    """A QuickBooks list object offered as a choice (account or payment method)."""

    id: str
    name: str
    type: str = ""
    subtype: str = ""


@dataclass(frozen=True)
class MappingChoices:
    deposit_accounts: list[QboChoice]
    income_accounts: list[QboChoice]
    payment_methods: list[QboChoice]


def _choice(obj: dict, *, name_key: str = "Name", type_key: str = "", subtype_key: str = "") -> QboChoice:
    name = obj.get("FullyQualifiedName") or obj.get(name_key) or ""
    return QboChoice(
        id=str(obj.get("Id", "")),
        name=str(name),
        type=str(obj.get(type_key, "")) if type_key else "",
        subtype=str(obj.get(subtype_key, "")) if subtype_key else "",
    )


def mapping_choices_get(*, client: qbo.QuickBooksClient | None = None) -> MappingChoices:
    """Read the choices from the connected company (two queries at QuickBooks).

    Deposit: Bank and Other Current Asset accounts (Undeposited Funds is one); income: Income accounts.
    Raises QuickBooksError subclasses (e.g. QuickBooksNotConnectedError, QuickBooksAuthorizationError).
    """
    client = client or qbo.QuickBooksClient.for_current_connection()
    accounts = [a for a in client.accounts() if a.get("Active", True) is not False]
    methods = [m for m in client.payment_methods() if m.get("Active", True) is not False]

    def by_name(choices: list[QboChoice]) -> list[QboChoice]:
        return sorted(choices, key=lambda c: c.name.casefold())

    return MappingChoices(
        deposit_accounts=by_name(
            [
                _choice(a, type_key="AccountType", subtype_key="AccountSubType")
                for a in accounts
                if a.get("AccountType") in DEPOSIT_ACCOUNT_TYPES
            ]
        ),
        income_accounts=by_name(
            [
                _choice(a, type_key="AccountType", subtype_key="AccountSubType")
                for a in accounts
                if a.get("AccountType") == INCOME_ACCOUNT_TYPE
            ]
        ),
        payment_methods=by_name([_choice(m, type_key="Type") for m in methods]),
    )


def mapping_defaults_choose(choices: MappingChoices) -> dict:
    """Sensible first settings for a newly connected company (pure function).

    Undeposited Funds; the "Services" income account (else the first one with "service" in its name, else the
    first); Cash -> Cash, Check -> Check, card -> Visa (else a credit-card method), ach -> an ACH/EFT-like method,
    other -> none.
    """

    def find(items: list[QboChoice], *tests) -> QboChoice | None:
        for test in tests:
            for item in items:
                if test(item):
                    return item
        return None

    def named(*names: str):
        wanted = {n.casefold() for n in names}
        return lambda c: c.name.casefold() in wanted

    def matches(pattern: str):
        return lambda c: re.search(pattern, c.name, flags=re.IGNORECASE) is not None

    deposit = find(choices.deposit_accounts, lambda c: c.subtype == "UndepositedFunds", named("Undeposited Funds"))
    income = find(
        choices.income_accounts,
        named("Services", "Service"),
        matches(r"servic"),
        lambda c: True,
    )
    methods = choices.payment_methods
    payment_methods = {
        "cash": find(methods, named("Cash")),
        "check": find(methods, named("Check", "Cheque")),
        "card": find(
            methods,
            named("Visa"),
            lambda c: c.type == "CREDIT_CARD",
            matches(r"credit|card|mastercard|american express|amex|discover"),
        ),
        "ach": find(
            methods,
            matches(r"\b(ach|eft)\b"),
            matches(r"e-?check|direct (deposit|debit)|bank transfer|electronic"),
        ),
        "other": None,
    }
    return {"deposit_account": deposit, "income_account": income, "payment_methods": payment_methods}


def mapping_settings_get(*, realm_id: str) -> QuickBooksMappingSettings | None:
    return QuickBooksMappingSettings.objects.prefetch_related("payment_methods").filter(realm_id=realm_id).first()


def mapping_settings_get_current(*, business_unit: BusinessUnit | None = None) -> QuickBooksMappingSettings | None:
    """Mapping for the company of the unit's current connection (default: the only unit's), or None."""
    current = (
        QuickBooksConnection.objects.filter(is_current=True, business_unit=business_unit or business_unit_default())
        .values_list("realm_id", flat=True)
        .first()
    )
    return mapping_settings_get(realm_id=current) if current else None


@transaction.atomic
def mapping_settings_update(
    *,
    realm_id: str,
    user,
    deposit_account: QboChoice | None,
    income_account: QboChoice | None,
    payment_methods: dict[str, QboChoice | None],
    record_refunds_for_me: bool | None = None,
    customer_details_winner: str | None = None,
    bring_in_quickbooks_payments: bool | None = None,
) -> QuickBooksMappingSettings:
    """Save the mapping for one company. `None` means "QuickBooks default" (deposit) or "not set".

    Ids and names should come from `mapping_choices_get` (the form validates against them).
    """
    unknown = set(payment_methods) - set(PAYMENT_METHOD_KEYS)
    if unknown:
        raise ApplicationError(f"Unknown payment methods: {', '.join(sorted(unknown))}.")
    mapping, _ = QuickBooksMappingSettings.objects.select_for_update().get_or_create(realm_id=realm_id)
    mapping.deposit_account_id = deposit_account.id if deposit_account else ""
    mapping.deposit_account_name = deposit_account.name if deposit_account else ""
    mapping.income_account_id = income_account.id if income_account else ""
    mapping.income_account_name = income_account.name if income_account else ""
    if record_refunds_for_me is not None:
        mapping.record_refunds_for_me = record_refunds_for_me
    if customer_details_winner is not None:
        mapping.customer_details_winner = customer_details_winner
    if bring_in_quickbooks_payments is not None:
        mapping.bring_in_quickbooks_payments = bring_in_quickbooks_payments
    mapping.updated_by = user
    mapping.full_clean()
    mapping.save()
    for method in PAYMENT_METHOD_KEYS:
        if method not in payment_methods:
            continue
        choice = payment_methods[method]
        QuickBooksPaymentMethodMapping.objects.update_or_create(
            settings=mapping,
            method=method,
            defaults={
                "qbo_payment_method_id": choice.id if choice else "",
                "qbo_payment_method_name": choice.name if choice else "",
            },
        )
    return mapping_settings_get(realm_id=realm_id)


def mapping_settings_ensure_defaults(
    *, connection: QuickBooksConnection, client: qbo.QuickBooksClient | None = None
) -> QuickBooksMappingSettings:
    """Fill default mapping settings for a company connected for the first time; keep existing ones untouched."""
    existing = mapping_settings_get(realm_id=connection.realm_id)
    if existing is not None:
        return existing
    choices = mapping_choices_get(client=client or qbo.QuickBooksClient(connection))  # network, no transaction
    defaults = mapping_defaults_choose(choices)
    with transaction.atomic():
        if QuickBooksMappingSettings.objects.select_for_update().filter(realm_id=connection.realm_id).exists():
            return mapping_settings_get(realm_id=connection.realm_id)
        return mapping_settings_update(
            realm_id=connection.realm_id,
            user=None,
            deposit_account=defaults["deposit_account"],
            income_account=defaults["income_account"],
            payment_methods=defaults["payment_methods"],
        )
