"""Payments recorded in QuickBooks against invoices FieldSync exported ("payments from QuickBooks").

A bookkeeper may key a customer's payment straight into QuickBooks against one of our invoices. Found by the same
two roads as every other change (a webhook notification of a Payment, changes.webhook_events_check, or the Change
Data Capture sweep, cdc.py), a QuickBooks payment counts when:
- it is not FieldSync's: no payment mapping for its Id, and its PrivateNote does not carry FieldSync's marker
  (mappers.is_fieldsync_payment: a create whose answer was lost is FieldSync's, and the export adopts it);
- it is neither deleted nor voided, and a line's LinkedTxn applies it to an Invoice FieldSync exported.

The payments named by one round of notifications are read once, together (one query `Id IN (...)`); the sweep's
answer already holds them. Then, per company (QuickBooksMappingSettings.bring_in_quickbooks_payments, off by
default):
- on: it becomes a FieldSync payment through billing (payment_record_from_quickbooks: origin and export status
  "recorded in QuickBooks", so nothing ever exports it), applied to our invoices by QuickBooks' LinkedTxn amounts,
  dated TxnDate, its method mapped back through the payment-method mapping ("other" when none or several match),
  PaymentRefNum as its reference; and a payment mapping to the QuickBooks Id, written in the same transaction.
- off, or when billing refuses (more than an invoice's open balance here, an invoice void here, another currency,
  another customer) or when it also pays an invoice FieldSync did not export: one open "Payment recorded in
  QuickBooks" change on the "Changed in QuickBooks" page, with both versions and the reason; a person may bring it
  in from there (change_bring_in, audited), which reads QuickBooks' payment again first.

Exactly once, whatever arrives twice or out of order: the mapping is unique per company and QuickBooks Id, and the
bring-in first locks the FieldSync invoices it will pay (in id order, as billing does) and then looks for that
mapping, so two workers bringing in the same payment queue on the invoices and the second finds it done.
QuickBooks is never called inside a transaction.
"""

import logging
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.models import Invoice, Payment
from billing.money import format_money
from fieldsync.exceptions import ApplicationError, ConflictError

from . import mappers
from .client import QuickBooksClient
from .company import company_profile_get
from .models import (
    QuickBooksChange,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksPaymentMethodMapping,
)

logger = logging.getLogger(__name__)

Kind = QuickBooksMapping.Kind
Change = QuickBooksChange.Change
CENT = Decimal("0.01")
READ_CHUNK = 100  # Ids per query: well under QuickBooks' 1,000 results and its URL limits


def _money(value) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else "0")).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return Decimal("0.00")


def _voided_or_deleted(row: dict) -> bool:
    # Intuit: a void zeroes the amounts and prepends "Voided" to PrivateNote; CDC answers deletions as status Deleted.
    if row.get("status") == "Deleted":
        return True
    return _money(row.get("TotalAmt")) == 0 and str(row.get("PrivateNote", "")).startswith("Voided")


def _linked_invoices(row: dict) -> dict[str, Decimal]:
    """QuickBooks invoice Id -> the amount of this payment applied to it (its lines' LinkedTxn)."""
    applied: dict[str, Decimal] = {}
    for line in row.get("Line") or []:
        for linked in line.get("LinkedTxn") or []:
            if linked.get("TxnType") == "Invoice" and linked.get("TxnId"):
                txn_id = str(linked["TxnId"])
                applied[txn_id] = applied.get(txn_id, Decimal("0.00")) + _money(line.get("Amount"))
    return applied


def read_by_ids(client: QuickBooksClient, entity: str, qbo_ids: list[str]) -> list[dict]:
    """The QuickBooks objects of `entity` with `qbo_ids`, read together (one query per READ_CHUNK Ids, so one
    metered read for a round of notifications; gone ones are absent)."""
    rows: list[dict] = []
    ids = sorted({str(i) for i in qbo_ids if str(i).isdigit()}, key=int)
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        quoted = ", ".join(f"'{qbo_id}'" for qbo_id in chunk)
        # QuickBooks' query language, not SQL; the Ids are digits only (checked above).
        statement = f"SELECT * FROM {entity} WHERE Id IN ({quoted}) MAXRESULTS {READ_CHUNK}"  # noqa: S608
        rows.extend(client.query(statement))
    return rows


def payments_consider(*, realm_id: str, rows: list[dict], found_by: str) -> set[str]:
    """Look at QuickBooks payments FieldSync has no mapping for (from a read or a CDC answer): bring in or flag those
    recorded against invoices FieldSync exported. Returns the Ids of those that were about FieldSync's invoices."""
    candidates = [
        row for row in rows if row.get("Id") and not _voided_or_deleted(row) and not mappers.is_fieldsync_payment(row)
    ]
    if not candidates:
        return set()
    mapped_payments = set(
        QuickBooksMapping.objects.filter(
            realm_id=realm_id, kind=Kind.PAYMENT, qbo_id__in=[str(row["Id"]) for row in candidates]
        ).values_list("qbo_id", flat=True)
    )
    candidates = [row for row in candidates if str(row["Id"]) not in mapped_payments]
    invoice_ids = {txn_id for row in candidates for txn_id in _linked_invoices(row)}
    invoice_mappings = {
        m.qbo_id: m
        for m in QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.INVOICE, qbo_id__in=invoice_ids)
    }
    bring_in = QuickBooksMappingSettings.objects.filter(realm_id=realm_id, bring_in_quickbooks_payments=True).exists()
    relevant = set()
    for row in candidates:
        linked = _linked_invoices(row)
        if not any(txn_id in invoice_mappings for txn_id in linked):
            continue  # not about anything FieldSync exported
        relevant.add(str(row["Id"]))
        if _already_decided(realm_id, row):
            continue
        reason = ""
        if bring_in:
            try:
                payment_bring_in(realm_id=realm_id, row=row)
                continue
            except ApplicationError as exc:
                reason = exc.message
        _flag(realm_id, row, invoice_mappings, found_by, reason)
    return relevant


def _already_decided(realm_id: str, row: dict) -> bool:
    """A person already decided about this very version (same SyncToken) of the payment: ignored, say. A sweep's
    overlap or a late duplicate notification must not list it again; a later edit in QuickBooks does."""
    return QuickBooksChange.objects.filter(
        realm_id=realm_id,
        kind=Kind.PAYMENT,
        qbo_id=str(row["Id"]),
        change=Change.RECORDED,
        state=QuickBooksChange.State.RESOLVED,
        theirs__sync_token=str(row.get("SyncToken", "")),
    ).exists()


def _theirs(row: dict, invoice_numbers: dict[str, str]) -> dict:
    linked = _linked_invoices(row)
    return {
        "total": _money(row.get("TotalAmt")),
        "customer": str((row.get("CustomerRef") or {}).get("value", "")),
        "customer_name": str((row.get("CustomerRef") or {}).get("name", "")),
        "date": str(row.get("TxnDate", "")),
        "reference": str(row.get("PaymentRefNum", "")),
        "method": str((row.get("PaymentMethodRef") or {}).get("name", "")),
        "currency": str((row.get("CurrencyRef") or {}).get("value", "")),
        "invoices": [
            {"qbo_id": txn_id, "number": invoice_numbers.get(txn_id, ""), "amount": amount}
            for txn_id, amount in linked.items()
        ],
        "sync_token": str(row.get("SyncToken", "")),
    }


def _flag(realm_id: str, row: dict, invoice_mappings: dict, found_by: str, reason: str) -> None:
    """One open "Payment recorded in QuickBooks" change per QuickBooks payment (the open-change constraint)."""
    local_ids = {qbo_id: int(m.local_key) for qbo_id, m in invoice_mappings.items() if qbo_id in _linked_invoices(row)}
    invoices = {
        i.pk: i for i in billing_selectors.invoice_with_balances(Invoice.objects.filter(pk__in=local_ids.values()))
    }
    numbers = {qbo_id: invoices[pk].number for qbo_id, pk in local_ids.items() if pk in invoices}
    ours = {
        "invoices": [
            {
                "number": invoices[pk].number,
                "status": invoices[pk].get_status_display(),
                "open_balance": _money(invoices[pk].open_balance),
            }
            for pk in local_ids.values()
            if pk in invoices
        ],
        "reason": reason,
    }
    theirs = _theirs(row, numbers)
    try:
        with transaction.atomic():
            QuickBooksChange.objects.create(
                realm_id=realm_id,
                kind=Kind.PAYMENT,
                local_key="",
                qbo_id=str(row["Id"]),
                change=Change.RECORDED,
                ours=ours,
                theirs=theirs,
                found_by=found_by,
            )
    except IntegrityError:
        # Already listed: keep the newest version of both sides for the person deciding.
        QuickBooksChange.objects.filter(
            realm_id=realm_id,
            kind=Kind.PAYMENT,
            qbo_id=str(row["Id"]),
            change=Change.RECORDED,
            state=QuickBooksChange.State.OPEN,
        ).update(ours=ours, theirs=theirs)


def _method_from(realm_id: str, row: dict) -> str:
    """Our payment method for QuickBooks' PaymentMethodRef, through the mapping; "other" unless exactly one fits."""
    qbo_method = str((row.get("PaymentMethodRef") or {}).get("value", ""))
    if not qbo_method:
        return Payment.Method.OTHER
    methods = list(
        QuickBooksPaymentMethodMapping.objects.filter(
            settings__realm_id=realm_id, qbo_payment_method_id=qbo_method
        ).values_list("method", flat=True)
    )
    return methods[0] if len(methods) == 1 else Payment.Method.OTHER


def _currency(realm_id: str, row: dict) -> str:
    """The payment's currency: its CurrencyRef (multicurrency companies), else the company's home currency."""
    currency = str((row.get("CurrencyRef") or {}).get("value", ""))
    if currency:
        return currency.upper()
    profile = company_profile_get(realm_id=realm_id)
    return profile.home_currency if profile is not None and profile.home_currency else ""


def payment_bring_in(*, realm_id: str, row: dict, user=None, change: QuickBooksChange | None = None) -> Payment:
    """Record one QuickBooks payment (as read from QuickBooks) in FieldSync, once. Returns the FieldSync payment (the
    one brought in before, if any). Raises ApplicationError, changing nothing, when it does not fit: what to do is
    in the message."""
    qbo_id = str(row["Id"])
    linked = _linked_invoices(row)
    invoice_mappings = {
        m.qbo_id: m
        for m in QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.INVOICE, qbo_id__in=list(linked))
    }
    unknown = sorted(set(linked) - set(invoice_mappings), key=lambda v: (len(v), v))
    if unknown:
        raise ApplicationError(
            f"It also pays QuickBooks invoice {', '.join(unknown)}, which FieldSync did not export; record it in "
            "FieldSync by hand, or ignore it here.",
            code="unknown_invoice",
        )
    if not linked:
        raise ApplicationError("It is not applied to any invoice FieldSync exported.", code="not_applied")
    amount = _money(row.get("TotalAmt"))
    if amount <= 0:
        raise ApplicationError("Its amount in QuickBooks is zero (voided?): nothing to bring in.", code="zero")
    invoice_ids = sorted(int(m.local_key) for m in invoice_mappings.values())
    try:
        received_on = date.fromisoformat(str(row.get("TxnDate", "")))
    except ValueError:
        received_on = timezone.localdate()
    with transaction.atomic():
        # Lock the invoices it pays first (id order, as billing does): a second bring-in of the same payment waits
        # here and then finds the mapping this one wrote.
        invoices = {i.pk: i for i in Invoice.objects.select_for_update().filter(pk__in=invoice_ids).order_by("pk")}
        existing = QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.PAYMENT, qbo_id=qbo_id).first()
        if existing is not None:
            return Payment.objects.get(pk=int(existing.local_key))
        # It belongs to its invoices' business unit (billing gives a payment its customer's unit): that must be the
        # unit whose company it was keyed in, or it would land in another unit's books.
        company_unit = (
            QuickBooksConnection.objects.filter(is_current=True, realm_id=realm_id)
            .values_list("business_unit_id", flat=True)
            .first()
        )
        if company_unit is not None and any(i.business_unit_id != company_unit for i in invoices.values()):
            raise ApplicationError(
                "The invoices it pays belong to another business unit than this QuickBooks company's; record it by "
                "hand in the right unit.",
                code="other_business_unit",
            )
        customers = {invoice.customer_id for invoice in invoices.values()}
        if len(customers) != 1:
            raise ApplicationError(
                "It pays invoices of different customers in FieldSync; record it by hand.", code="wrong_customer"
            )
        customer_mapping = QuickBooksMapping.objects.filter(
            realm_id=realm_id, kind=Kind.CUSTOMER, local_key=str(next(iter(customers)))
        ).first()
        their_customer = str((row.get("CustomerRef") or {}).get("value", ""))
        if customer_mapping is not None and their_customer and customer_mapping.qbo_id != their_customer:
            raise ApplicationError(
                f"In QuickBooks it is from customer {their_customer}, not from the customer of these invoices; "
                "correct it in QuickBooks first.",
                code="wrong_customer",
            )
        note = str(row.get("PrivateNote", "") or "")
        payment = billing_services.payment_record_from_quickbooks(
            customer=invoices[invoice_ids[0]].customer,
            amount=amount,
            method=_method_from(realm_id, row),
            received_on=received_on,
            quickbooks_id=qbo_id,
            reference=str(row.get("PaymentRefNum", "") or "")[:100],
            currency=_currency(realm_id, row) or None,
            memo=f"Recorded in QuickBooks (payment {qbo_id})" + (f": {note}" if note else ""),
            applications=[
                billing_services.ApplicationInput(
                    invoice=invoices[int(invoice_mappings[txn_id].local_key)], amount=value
                )
                for txn_id, value in linked.items()
            ],
            user=user,
        )
        QuickBooksMapping.objects.create(
            realm_id=realm_id,
            kind=Kind.PAYMENT,
            local_key=str(payment.pk),
            qbo_id=qbo_id,
            sync_token=str(row.get("SyncToken", "")),
        )
        QuickBooksMappingAudit.objects.create(
            realm_id=realm_id,
            kind=Kind.PAYMENT,
            local_key=str(payment.pk),
            action=QuickBooksMappingAudit.Action.BRING_IN,
            after={"qbo_id": qbo_id, "sync_token": str(row.get("SyncToken", ""))},
            note=f"{format_money(amount, payment.currency)} recorded in QuickBooks, brought in"
            + (f" (change #{change.pk})" if change is not None else " automatically"),
            by=user,
        )
        _close_open_flag(realm_id, qbo_id, payment, user, change)
    return payment


def _close_open_flag(realm_id: str, qbo_id: str, payment: Payment, user, change: QuickBooksChange | None) -> None:
    open_flags = QuickBooksChange.objects.select_for_update().filter(
        realm_id=realm_id, kind=Kind.PAYMENT, qbo_id=qbo_id, change=Change.RECORDED, state=QuickBooksChange.State.OPEN
    )
    for flag in open_flags:
        flag.local_key = str(payment.pk)
        flag.state, flag.resolution = QuickBooksChange.State.RESOLVED, QuickBooksChange.Resolution.BRING_IN
        flag.resolved_by, flag.resolved_at = user, timezone.now()
        if change is None or flag.pk != change.pk:
            flag.note = "Brought in automatically (the setting is on)."
        flag.save(update_fields=["local_key", "state", "resolution", "resolved_by", "resolved_at", "note"])


def change_bring_in(*, change_id: int, user, note: str = "") -> QuickBooksChange:
    """ "Bring it into FieldSync" for a payment recorded in QuickBooks: read it from QuickBooks again (it may have
    changed since it was listed), then bring it in once (payment_bring_in) and close the change with who, when and
    the note. Raises ApplicationError / ConflictError (what to do instead) and changes nothing when it does not fit."""
    from .errors import QuickBooksObjectNotFoundError

    change = QuickBooksChange.objects.get(pk=change_id)
    if change.state != QuickBooksChange.State.OPEN:
        raise ConflictError("Someone already dealt with this change.", code="change_resolved")
    if change.change != Change.RECORDED:
        raise ApplicationError("Only a payment recorded in QuickBooks can be brought in.", code="not_bringable")
    connection = QuickBooksConnection.objects.filter(is_current=True, realm_id=change.realm_id).first()
    if connection is None:
        raise ApplicationError("That QuickBooks company is not connected now; connect it first.", code="not_connected")
    try:
        row = QuickBooksClient(connection).read("Payment", change.qbo_id)
    except QuickBooksObjectNotFoundError:
        row = {"Id": change.qbo_id, "status": "Deleted"}
    if _voided_or_deleted(row):
        raise ApplicationError(
            "The payment is no longer in QuickBooks (deleted or voided there); ignore this.", code="gone"
        )
    with transaction.atomic():
        change = QuickBooksChange.objects.select_for_update().get(pk=change_id)
        if change.state != QuickBooksChange.State.OPEN:
            raise ConflictError("Someone already dealt with this change.", code="change_resolved")
        payment_bring_in(realm_id=change.realm_id, row=row, user=user, change=change)
        change.refresh_from_db()
        change.note = note[:500]
        change.save(update_fields=["note"])
    return change
