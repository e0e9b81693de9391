"""Changes after export: an invoice's lines, tax or dates changed in FieldSync (billing.services.invoice_edit) reach
its QuickBooks copy as a sparse update — only when that keeps QuickBooks right; otherwise a person is told why.

Billing tells us after the commit (billing.hooks.invoice_changed_notify); when the invoice is linked in the connected
company a task runs invoice_update_push, under the company's export lease (never beside an export posting payments
to the same invoice). It reads the QuickBooks invoice and compares, part by part — the lines with the tax (sent
together: QuickBooks recomputes its tax from the lines), the invoice date, the due date:
- Nothing differs: nothing is sent. A part FieldSync holds no value for (a date never set) is never sent, so an
  empty value never blanks QuickBooks.
- QuickBooks' SyncToken is the one stored at FieldSync's last write: nobody changed it, the parts that differ are
  sent. It moved (a person, or a payment applied — that moves it too): each part FieldSync wants to change is
  compared with what FieldSync last sent (the create or the latest update, from the outbox). Changed on both sides:
  nothing is sent, and the invoice is flagged on the "Changed in QuickBooks" page ("Changed in FieldSync, not in
  QuickBooks") with the reason. Changed only in FieldSync: sent at the current SyncToken.
- QuickBooks must stay consistent: our new total may not be below what QuickBooks has applied to the invoice
  (TotalAmt − Balance: payments linked there). Billing refuses such an edit already; QuickBooks' own figures are
  checked again here, and such an update is flagged, never sent.
- 5010 at send time (changed between our read and our write): read and compare again, at most ATTEMPTS times.
- After the update QuickBooks' TotalAmt is compared with ours: QuickBooks may compute the tax itself (automated
  sales tax) and reach another figure — the invoice is then flagged ("Sent to QuickBooks, its total differs").
Exactly once, like the customer updates (updates.py): the update is an outbox row (QuickBooksRequest kind "update",
local key "invoice:<id>") with a request id from this installation, the QuickBooks id, the SyncToken and a digest of
the content, committed before it is sent; a pending one (lost answer) is re-sent unchanged first.

The update's content is built by invoice_update_body, the one builder that "Update the QuickBooks invoice to match
FieldSync" on a held invoice (holds.py) uses too: it comes from mappers.invoice_payload, the export's own mapper.
"""

import os
import socket
import uuid
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from billing import selectors as billing_selectors
from billing.models import Invoice
from billing.money import format_money
from fieldsync.exceptions import ApplicationError

from . import invoice_checks, mappers
from .client import QuickBooksClient
from .errors import QuickBooksError, QuickBooksStaleObjectError
from .models import (
    Installation,
    QuickBooksChange,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
    QuickBooksTaxCodeMapping,
)
from .services import UPDATE_KIND, _batch_item_id, _lease_acquire, _lease_release
from .tracking import tracking_choices_for_invoice
from .updates import _close

Kind = QuickBooksMapping.Kind
Change = QuickBooksChange.Change
PUSH_TASK = "quickbooks_export.tasks.invoice_update_push_task"
ATTEMPTS = 3  # reads and compares when QuickBooks keeps answering "stale"
# The parts compared, each with the QuickBooks field it lives in. The lines and the tax are sent together.
PARTS = {"lines": "Line", "tax": "TxnTaxDetail", "TxnDate": "TxnDate", "DueDate": "DueDate"}
PART_WORDS = {"lines": "lines", "tax": "sales tax", "TxnDate": "invoice date", "DueDate": "due date"}
CONTENT = ("lines", "tax")


def invoice_changed_listener(invoice_id: int) -> None:
    """billing.hooks listener (after commit): queue the push when the invoice is in the QuickBooks company connected
    for its business unit (one query)."""
    of_its_unit = QuickBooksConnection.objects.filter(is_current=True, business_unit__invoices=invoice_id).values(
        "realm_id"
    )
    if QuickBooksMapping.objects.filter(
        realm_id__in=of_its_unit, kind=Kind.INVOICE, local_key=str(invoice_id)
    ).exists():
        async_task(PUSH_TASK, invoice_id, task_name=f"invoice-update-{invoice_id}-{timezone.now():%H%M%S%f}")


# --- What QuickBooks should hold -----------------------------------------------------------------------------------


def invoice_update_body(
    *, client: QuickBooksClient, realm_id: str, invoice: Invoice, current: dict, error_code: str
) -> dict:
    """The fields of a sparse update that make QuickBooks' invoice `current` carry our `invoice` (annotated with its
    balances, `lines` and `customer` loaded): Line, TxnTaxDetail, and what the export mapper adds for tax
    (GlobalTaxCalculation, BillAddr/ShipAddr), plus TxnDate/DueDate when FieldSync holds them. Raises
    ApplicationError(`error_code`) when an item of a line is not in QuickBooks yet."""
    keys = {mappers.item_key(line.service_name) for line in invoice.lines.all()}
    item_ids = dict(
        QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.ITEM, local_key__in=keys).values_list(
            "local_key", "qbo_id"
        )
    )
    if missing := keys - item_ids.keys():
        raise ApplicationError(
            f"FieldSync has no QuickBooks item for {', '.join(sorted(missing))} yet; export once more or link the "
            "item on the mappings page, then try again.",
            code=error_code,
        )
    from .company import company_profile_current, invoice_tax_code_id

    profile = company_profile_current(client=client)
    settings_row = QuickBooksMappingSettings.objects.filter(realm_id=realm_id).first()
    per_rate = dict(
        QuickBooksTaxCodeMapping.objects.filter(realm_id=realm_id, tax_rate_id=invoice.tax_rate_id).values_list(
            "tax_rate_id", "qbo_tax_code_id"
        )
    )
    # The code that carries our tax amount: the one the export would send (chosen for the invoice's tax rate, else
    # the company default), else the one QuickBooks put on the invoice (automated sales tax picks its own code; an
    # amount sent with a TxnTaxCodeRef overrides its figure).
    theirs = str(((current.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef") or {}).get("value", ""))
    chosen = invoice_tax_code_id(tax_rate_id=invoice.tax_rate_id, per_rate=per_rate, settings_row=settings_row)
    payload = mappers.invoice_payload(
        invoice,
        customer_id=str((current.get("CustomerRef") or {}).get("value", "")),
        item_ids=item_ids,
        profile=profile,
        sales_tax_code_id=chosen or theirs,
        no_tax_code_id=settings_row.no_tax_code_id if settings_row else "",
        customer=invoice.customer,
        **_unit_refs(realm_id, invoice),
    )
    body = {"Line": payload["Line"], "TxnTaxDetail": payload.get("TxnTaxDetail", {})}
    for key in ("GlobalTaxCalculation", "BillAddr", "ShipAddr", "TxnDate", "DueDate", "ClassRef", "DepartmentRef"):
        if key in payload:
            body[key] = payload[key]
    return body


def _unit_refs(realm_id: str, invoice) -> dict[str, str]:
    """The class and location chosen for the invoice's job type, else its unit, as the export sends them
    (tracking.py)."""
    return tracking_choices_for_invoice(realm_id=realm_id, invoice=invoice).for_invoice(invoice).refs()


def _money(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value)).quantize(Decimal("0.01"))


def _view(row: dict, part: str, *, tax_codes: bool, our_tax: bool):
    """One part of an invoice (ours, QuickBooks', or what we sent) reduced to what FieldSync decides, so that the
    fields QuickBooks adds (line Ids, LineNum, the subtotal line, its tax lines) never count as a difference."""
    if part == "tax":
        # Our tax amount counts only when we send one; otherwise QuickBooks computes it and the total is checked.
        return _money((row.get("TxnTaxDetail") or {}).get("TotalTax")) if our_tax else None
    if part != "lines":
        return row.get(part) or None
    lines = []
    for line in row.get("Line") or []:
        if line.get("DetailType") != "SalesItemLineDetail":
            continue
        detail = line.get("SalesItemLineDetail") or {}
        lines.append(
            (
                str((detail.get("ItemRef") or {}).get("value", "")),
                _money(detail.get("Qty")),
                _money(detail.get("UnitPrice")),
                _money(line.get("Amount")),
                line.get("Description") or "",
                str((detail.get("TaxCodeRef") or {}).get("value", "")) if tax_codes else "",
            )
        )
    return tuple(lines)


def _views(row: dict | None, desired: dict) -> dict:
    if row is None:
        return {}
    tax_codes = any("TaxCodeRef" in (line.get("SalesItemLineDetail") or {}) for line in desired["Line"])
    our_tax = "TotalTax" in (desired.get("TxnTaxDetail") or {})
    return {
        part: _view(row, part, tax_codes=tax_codes, our_tax=our_tax)
        for part, field in PARTS.items()
        if field in row or part == "tax"
    }


def _last_sent(realm_id: str, invoice_id: int) -> list[dict]:
    """What FieldSync wrote to this invoice in QuickBooks, newest first: its updates, then its create (in a batch:
    the batch item of this invoice). Empty for an invoice that was linked, not created."""
    bid = _batch_item_id(Kind.INVOICE, str(invoice_id))
    ours = Q(kind=UPDATE_KIND, local_key=f"invoice:{invoice_id}") | Q(kind=Kind.INVOICE, local_key=str(invoice_id))
    # A batch's payload is searched as text for its item id: the JSON of both databases writes `"bId": "i42"` (the
    # closing quote keeps "i4" from matching "i42"; JSONField's `contains` would mean JSON containment).
    ours |= Q(operation="batch", payload__icontains=f'"bId": "{bid}"')
    sent = []
    for request in QuickBooksRequest.objects.filter(
        ours, realm_id=realm_id, state=QuickBooksRequest.State.DONE
    ).order_by("-completed_at", "-id"):
        if request.operation == "batch":
            sent += [
                item.get("Invoice", {})
                for item in request.payload.get("BatchItemRequest", [])
                if item.get("bId") == bid
            ]
        else:
            sent.append(request.payload)
    return sent


# --- The push ------------------------------------------------------------------------------------------------------


def invoice_update_push(*, invoice_id: int) -> str:
    """Send the invoice's changed lines, tax and dates to QuickBooks when that is safe. Returns, in a word:
    "not_exported", "busy" (an export of the company runs: try again), "unchanged", "updated", or "flagged"
    (recorded on the "Changed in QuickBooks" page; nothing sent, or sent and QuickBooks computed another total).
    Raises QuickBooksError when QuickBooks cannot be reached or refuses (the outbox keeps the update once)."""
    invoice = Invoice.objects.get(pk=invoice_id)
    # The company of the invoice's business unit: each unit keeps its own books.
    connection = QuickBooksConnection.objects.filter(is_current=True, business_unit_id=invoice.business_unit_id).first()
    if connection is None:
        return "not_exported"
    mapping = QuickBooksMapping.objects.filter(
        realm_id=connection.realm_id, kind=Kind.INVOICE, local_key=str(invoice_id)
    ).first()
    if mapping is None or mapping.stale_reason or invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
        return "not_exported"  # a void one is voids.py's
    holder = f"invoice-update:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _lease_acquire(connection.realm_id, holder):
        return "busy"
    try:
        return _push(QuickBooksClient(connection), mapping, invoice_id)
    finally:
        _lease_release(connection.realm_id, holder)


def _push(client: QuickBooksClient, mapping: QuickBooksMapping, invoice_id: int) -> str:
    pending = QuickBooksRequest.objects.filter(
        realm_id=mapping.realm_id,
        kind=UPDATE_KIND,
        local_key=f"invoice:{invoice_id}",
        state=QuickBooksRequest.State.PENDING,
    ).first()
    invoice = None
    for _ in range(ATTEMPTS):
        invoice = (
            billing_selectors.invoice_with_balances()
            .select_related("customer", "tax_rate")
            .prefetch_related("lines")
            .get(pk=invoice_id)
        )
        if pending is None:
            current = client.read("Invoice", mapping.qbo_id)
            if invoice_checks.qbo_figures(current)[0] == 0 and str(current.get("PrivateNote", "")).startswith("Voided"):
                return "unchanged"  # voided in QuickBooks: changes.py tells a person; nothing to update
            try:
                desired = invoice_update_body(
                    client=client, realm_id=mapping.realm_id, invoice=invoice, current=current, error_code="no_item"
                )
            except ApplicationError as exc:  # a new line's service is not a QuickBooks item yet
                _flag(mapping, Change.EDIT_HELD, invoice, current, f"{invoice.number}: {exc.message}")
                return "flagged"
            payload, problem = _compare(mapping, invoice, current, desired)
            if problem:
                _flag(mapping, Change.EDIT_HELD, invoice, current, problem)
                return "flagged"
            if payload is None:
                return "unchanged"
            pending = _outbox(mapping, invoice_id, payload)
        try:
            answer = client.update("Invoice", pending.payload, request_id=pending.request_id)
        except QuickBooksStaleObjectError:
            # Changed in QuickBooks between our read and our write: close this one and compare again.
            _close(pending, error="5010: changed in QuickBooks meanwhile; compared again")
            pending = None
            continue
        except QuickBooksError as exc:
            if not exc.retryable:
                _close(pending, error=f"{exc.qbo_code or exc.code}: {exc.message}")
            raise
        return _conclude(mapping, invoice, pending, answer)
    _flag(
        mapping,
        Change.EDIT_HELD,
        invoice,
        {},
        f"QuickBooks kept changing {invoice.number} while FieldSync compared; check the invoice in both and save it "
        "again in FieldSync.",
    )
    return "flagged"


def _compare(mapping: QuickBooksMapping, invoice: Invoice, current: dict, desired: dict) -> tuple[dict | None, str]:
    """(sparse update to send or None, the reason it must not be sent or "")."""
    want, have = _views(desired, desired), _views(current, desired)
    changed = [part for part in want if want[part] != have.get(part)]
    if not changed:
        return None, ""
    if str(current.get("SyncToken", "")) != mapping.sync_token:
        sent = _last_sent(mapping.realm_id, invoice.pk)
        both = []
        for part in changed:
            ours = next((_views(row, desired)[part] for row in sent if PARTS[part] in row), None)
            if ours is None and part != "lines":
                # Never sent by FieldSync: QuickBooks' value is its own (a due date from the terms, a tax it
                # computed). Lines are always sent; none sent means a linked invoice, and then nothing is known.
                continue
            if ours is None or ours != have.get(part):
                both.append(PART_WORDS[part])
        if both:
            return None, (
                f"{invoice.number} was changed in QuickBooks since FieldSync last sent it ({', '.join(both)}); "
                "FieldSync did not overwrite it. Check both and make them agree."
            )
    total, _, balance = invoice_checks.qbo_figures(current)
    applied = total - balance
    if invoice.total < applied:
        money = lambda amount: format_money(amount, invoice.currency)  # noqa: E731
        return None, (
            f"QuickBooks has {money(applied)} of payments applied to {invoice.number} (invoice {mapping.qbo_id}); "
            f"FieldSync's new total {money(invoice.total)} would be below them, so it was not sent. Take the extra "
            "payments off the invoice in QuickBooks, or change the invoice in FieldSync back."
        )
    payload = {"Id": mapping.qbo_id, "SyncToken": str(current["SyncToken"]), "sparse": True}
    for part in changed:
        if part in CONTENT:
            payload.update({k: v for k, v in desired.items() if k not in ("TxnDate", "DueDate")})
        else:
            payload[part] = desired[part]
    return payload, ""


def _conclude(mapping: QuickBooksMapping, invoice: Invoice, request: QuickBooksRequest, answer: dict) -> str:
    total = invoice_checks.qbo_figures(answer)[0]
    with transaction.atomic():
        _close(request, answer=answer)
        before = {"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token}
        mapping.sync_token = str(answer.get("SyncToken", ""))
        mapping.save(update_fields=["sync_token", "updated_at"])
        QuickBooksMappingAudit.objects.create(
            realm_id=mapping.realm_id,
            kind=Kind.INVOICE,
            local_key=mapping.local_key,
            action=QuickBooksMappingAudit.Action.UPDATE_INVOICE,
            before=before,
            after={"sync_token": mapping.sync_token, "total": total},
            note=f"{invoice.number} changed in FieldSync after export",
        )
    if total != invoice.total:
        money = lambda amount: format_money(amount, invoice.currency)  # noqa: E731
        _flag(
            mapping,
            Change.EDIT_DIFFERS,
            invoice,
            answer,
            f"QuickBooks took FieldSync's change to {invoice.number} but computed a total of {money(total)}; "
            f"FieldSync has {money(invoice.total)}. QuickBooks computes the sales tax itself (automated sales tax, or "
            "no tax code chosen for FieldSync's tax on the QuickBooks page): check the tax in QuickBooks.",
        )
        return "flagged"
    return "updated"


def _outbox(mapping: QuickBooksMapping, invoice_id: int, payload: dict) -> QuickBooksRequest:
    request_id = mappers.request_id_for(
        Installation.current_id(),
        mapping.realm_id,
        "update",
        "Invoice",
        mapping.qbo_id,
        payload["SyncToken"],
        mappers.payload_digest(payload),
    )
    try:
        with transaction.atomic():
            return QuickBooksRequest.objects.create(
                realm_id=mapping.realm_id,
                request_id=request_id,
                operation="Invoice.update",
                kind=UPDATE_KIND,
                local_key=f"invoice:{invoice_id}",
                payload=payload,
            )
    except IntegrityError:
        return QuickBooksRequest.objects.get(request_id=request_id)


def _flag(mapping: QuickBooksMapping, change: str, invoice: Invoice, row: dict, note: str) -> None:
    """One open flag per invoice and kind of change: a newer reason replaces the older one's figures."""
    ours = {"total": f"{invoice.total:.2f}", "note": note}
    theirs = {
        "total": f"{invoice_checks.qbo_figures(row)[0]:.2f}" if row else None,
        "sync_token": str(row.get("SyncToken", "")),
        "note": note,
    }
    updated = QuickBooksChange.objects.filter(
        realm_id=mapping.realm_id, kind=Kind.INVOICE, qbo_id=mapping.qbo_id, change=change, state="open"
    ).update(ours=ours, theirs=theirs, detected_at=timezone.now())
    if updated:
        return
    try:
        with transaction.atomic():
            QuickBooksChange.objects.create(
                realm_id=mapping.realm_id,
                kind=Kind.INVOICE,
                local_key=mapping.local_key,
                qbo_id=mapping.qbo_id,
                change=change,
                ours=ours,
                theirs=theirs,
                found_by="update",
            )
    except IntegrityError:
        pass  # flagged by a concurrent run: one open row is enough
