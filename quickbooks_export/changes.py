"""Detect what changed in QuickBooks for what FieldSync exported: deleted, voided, another amount, another customer.

Fed by webhook notifications (webhooks.py). Each object named is read from QuickBooks now (never judged from the
notification, which may be late, duplicated or out of order) and compared with FieldSync's records; a difference is
kept as one open QuickBooksChange per object and kind of change, with both versions.
"""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import Customer, Payment, Refund

from . import inbound
from .client import QuickBooksClient
from .errors import QuickBooksObjectNotFoundError
from .models import QuickBooksChange, QuickBooksConnection, QuickBooksEvent, QuickBooksMapping

Kind = QuickBooksMapping.Kind
Change = QuickBooksChange.Change
KIND_OF = {"Payment": Kind.PAYMENT, "Invoice": Kind.INVOICE, "Customer": Kind.CUSTOMER}
CHUNK = 200


def webhook_events_check() -> int:
    """Check the objects of pending events (a chunk at a time). Returns how many changes were found."""
    found = 0
    # Each business unit's company: an event is checked with the connection of the company it is about.
    connections = {c.realm_id: c for c in QuickBooksConnection.objects.filter(is_current=True)}
    clients: dict[str, QuickBooksClient] = {}

    def _client(realm_id: str) -> QuickBooksClient:
        if realm_id not in clients:
            clients[realm_id] = QuickBooksClient(connections[realm_id])
        return clients[realm_id]

    while True:
        events = list(QuickBooksEvent.objects.filter(state=QuickBooksEvent.State.PENDING).order_by("id")[:CHUNK])
        if not events:
            return found
        mapped = {}
        wanted = {(e.realm_id, e.qbo_id) for e in events if e.realm_id in connections}
        for mapping in QuickBooksMapping.objects.filter(
            realm_id__in={realm for realm, _ in wanted},
            kind__in=list(KIND_OF.values()),
            qbo_id__in={qbo_id for _, qbo_id in wanted},
        ):
            mapped[(mapping.realm_id, mapping.kind, mapping.qbo_id)] = mapping
        checked, ignored, seen = [], [], set()
        # Per company: payments not ours (maybe keyed in QuickBooks against our invoices, inbound.py) and customers,
        # each read together below with that company's client.
        unmapped_payments: dict[str, dict[str, list[int]]] = {}
        customers: dict[str, dict[str, QuickBooksMapping]] = {}
        for event in events:
            mapping = mapped.get((event.realm_id, KIND_OF.get(event.entity), event.qbo_id))
            if (
                mapping is None
                and event.realm_id in connections
                and event.entity == "Payment"
                and event.operation.lower().startswith(("create", "update"))
            ):
                unmapped_payments.setdefault(event.realm_id, {}).setdefault(event.qbo_id, []).append(event.pk)
                continue
            if mapping is None:
                ignored.append(event.pk)
                continue
            checked.append(event.pk)
            if (mapping.realm_id, mapping.kind, mapping.qbo_id) in seen:
                continue  # duplicates and later events of the same object: one read says how it is now
            seen.add((mapping.realm_id, mapping.kind, mapping.qbo_id))
            if mapping.kind == Kind.CUSTOMER:
                customers.setdefault(mapping.realm_id, {})[mapping.qbo_id] = mapping  # a customer is never deleted
                continue
            found += len(object_check(client=_client(mapping.realm_id), mapping=mapping, found_by="webhook"))
        for realm_id, by_id in customers.items():
            client = _client(realm_id)
            for row in inbound.read_by_ids(client, "Customer", list(by_id)):
                found += len(object_check(client=client, mapping=by_id[str(row["Id"])], found_by="webhook", row=row))
        for realm_id, by_id in unmapped_payments.items():
            rows = inbound.read_by_ids(_client(realm_id), "Payment", list(by_id))
            relevant = inbound.payments_consider(realm_id=realm_id, rows=rows, found_by="webhook")
            found += len(relevant)
            for qbo_id, event_ids in by_id.items():
                (checked if qbo_id in relevant else ignored).extend(event_ids)
        now = timezone.now()
        QuickBooksEvent.objects.filter(pk__in=checked).update(state=QuickBooksEvent.State.CHECKED, checked_at=now)
        QuickBooksEvent.objects.filter(pk__in=ignored).update(state=QuickBooksEvent.State.IGNORED, checked_at=now)


def voided_in_quickbooks(row: dict) -> bool:
    # Intuit: a void zeroes the amounts and prepends "Voided" to PrivateNote.
    return Decimal(str(row.get("TotalAmt", "0"))) == 0 and str(row.get("PrivateNote", "")).startswith("Voided")


def mapped_objects(realm_id: str, entity: str, qbo_ids: list[str]) -> dict[str, QuickBooksMapping]:
    """QuickBooks Id -> mapping, for the objects of `entity` FieldSync exported (one query)."""
    kind = KIND_OF.get(entity)
    if kind is None or not qbo_ids:
        return {}
    rows = QuickBooksMapping.objects.filter(realm_id=realm_id, kind=kind, qbo_id__in=qbo_ids)
    return {m.qbo_id: m for m in rows}


def object_check(
    *, client: QuickBooksClient | None, mapping: QuickBooksMapping, found_by: str, row: dict | None = None
) -> list[QuickBooksChange]:
    """Compare one exported Payment, Invoice or Customer as QuickBooks has it (`row` from a Change Data Capture
    answer, or read now with `client`) with FieldSync's, and record each difference."""
    if mapping.kind == Kind.CUSTOMER:
        return _customer_check(client=client, mapping=mapping, found_by=found_by, row=row)
    entity = "Payment" if mapping.kind == Kind.PAYMENT else "Invoice"
    if mapping.kind == Kind.PAYMENT:
        local = Payment.objects.get(pk=int(mapping.local_key))
    else:
        local = billing_selectors.invoice_get_with_balances(invoice_id=int(mapping.local_key))
    ours = {"total": local.amount if mapping.kind == Kind.PAYMENT else local.total}
    customer_qbo_id = (
        QuickBooksMapping.objects.filter(
            realm_id=mapping.realm_id, kind=Kind.CUSTOMER, local_key=str(local.customer_id)
        )
        .values_list("qbo_id", flat=True)
        .first()
    )
    ours["customer"] = customer_qbo_id or ""
    if row is None:
        try:
            row = client.read(entity, mapping.qbo_id)
        except QuickBooksObjectNotFoundError:
            return _record(mapping, Change.DELETED, ours, {}, found_by)
    if row.get("status") == "Deleted":
        return _record(mapping, Change.DELETED, ours, {}, found_by)
    theirs = {"total": Decimal(str(row.get("TotalAmt", "0"))), "customer": (row.get("CustomerRef") or {}).get("value")}
    theirs["sync_token"] = str(row.get("SyncToken", ""))
    if mapping.sync_token and theirs["sync_token"] == mapping.sync_token:
        return []  # as FieldSync last left it (its own void or update, announced like anyone's): nobody else changed it
    changes = []
    if voided_in_quickbooks(row):
        return _record(mapping, Change.VOIDED, ours, theirs, found_by)
    comparable = mapping.kind == Kind.INVOICE or not Refund.objects.filter(payment_id=local.pk).exists()
    if comparable and theirs["total"] != ours["total"]:
        changes += _record(mapping, Change.AMOUNT, ours, theirs, found_by)
    if ours["customer"] and theirs["customer"] != ours["customer"]:
        changes += _record(mapping, Change.CUSTOMER, ours, theirs, found_by)
    return changes


# --- Customer details ----------------------------------------------------------------------------------------------
# The details FieldSync keeps in QuickBooks (updates.FIELDS), in FieldSync's terms: (field, label, QuickBooks' value).
CUSTOMER_DETAILS = (
    ("company_name", "Company", lambda c: c.get("CompanyName")),
    ("email", "E-mail", lambda c: (c.get("PrimaryEmailAddr") or {}).get("Address")),
    ("phone", "Phone", lambda c: (c.get("PrimaryPhone") or {}).get("FreeFormNumber")),
    ("billing_line1", "Address", lambda c: (c.get("BillAddr") or {}).get("Line1")),
    ("billing_line2", "Address (line 2)", lambda c: (c.get("BillAddr") or {}).get("Line2")),
    ("billing_city", "City", lambda c: (c.get("BillAddr") or {}).get("City")),
    ("billing_region", "State / region", lambda c: (c.get("BillAddr") or {}).get("CountrySubDivisionCode")),
    ("billing_postal_code", "Postal code", lambda c: (c.get("BillAddr") or {}).get("PostalCode")),
    ("billing_country", "Country", lambda c: (c.get("BillAddr") or {}).get("Country")),
)
DETAIL_LABELS = {field: label for field, label, _ in CUSTOMER_DETAILS}


def _customer_check(
    *, client: QuickBooksClient | None, mapping: QuickBooksMapping, found_by: str, row: dict | None
) -> list[QuickBooksChange]:
    """A customer's details changed in QuickBooks by someone else than FieldSync (its SyncToken moved since FieldSync
    last wrote or linked it) and now differ from FieldSync's: one open "Customer details changed" change with both
    versions of the fields that differ. Only fields QuickBooks holds a value for count: an emptied field is never
    copied over FieldSync's (as FieldSync's empty fields never blank QuickBooks', updates.py)."""
    if row is None:
        try:
            row = client.read("Customer", mapping.qbo_id)
        except QuickBooksObjectNotFoundError:
            return []  # QuickBooks makes customers inactive; it does not delete them
    token = str(row.get("SyncToken", ""))
    if token == mapping.sync_token or mapping.stale_reason:
        return []  # as FieldSync last left it (its own update's notification, say)
    customer = Customer.objects.get(pk=int(mapping.local_key))
    ours, theirs = {}, {}
    for field, _label, read in CUSTOMER_DETAILS:
        value = str(read(row) or "").strip()
        if field == "email":
            value = value.lower()
        if value and value != getattr(customer, field):
            ours[field], theirs[field] = getattr(customer, field), value
    if not theirs:
        return []
    theirs["sync_token"] = token
    decided = QuickBooksChange.objects.filter(
        realm_id=mapping.realm_id,
        kind=Kind.CUSTOMER,
        qbo_id=mapping.qbo_id,
        change=Change.DETAILS,
        state=QuickBooksChange.State.RESOLVED,
        theirs__sync_token=token,
    )
    if decided.exists():
        return []  # a person already decided about this very version
    recorded = _record(mapping, Change.DETAILS, ours, theirs, found_by)
    if not recorded:  # already listed: keep the newest version of both sides for the person deciding
        QuickBooksChange.objects.filter(
            realm_id=mapping.realm_id,
            kind=Kind.CUSTOMER,
            qbo_id=mapping.qbo_id,
            change=Change.DETAILS,
            state=QuickBooksChange.State.OPEN,
        ).update(ours=ours, theirs=theirs)
    elif _quickbooks_wins(mapping.realm_id):
        # The company said QuickBooks wins for customer details: accepted at once, kept on the list as decided.
        recorded = [
            change_resolve(
                change_id=recorded[0].pk,
                resolution=Resolution.ACCEPT,
                user=None,
                note="Taken automatically: QuickBooks wins for customer details (the company's setting).",
            )
        ]
    return recorded


def _quickbooks_wins(realm_id: str) -> bool:
    from .models import QuickBooksMappingSettings

    winner = QuickBooksMappingSettings.CustomerDetailsWinner
    return QuickBooksMappingSettings.objects.filter(
        realm_id=realm_id, customer_details_winner=winner.QUICKBOOKS
    ).exists()


def details_side_by_side(change: QuickBooksChange) -> list[tuple[str, str, str]]:
    """(label, FieldSync's, QuickBooks') for each customer detail of a DETAILS change (no queries)."""
    return [
        (DETAIL_LABELS[field], change.ours.get(field, ""), value)
        for field, value in change.theirs.items()
        if field in DETAIL_LABELS
    ]


def _accept_customer_details(change: QuickBooksChange, user) -> None:
    """Copy QuickBooks' details into the FieldSync customer, through billing, without telling the export app (so no
    push back to QuickBooks: what FieldSync would send is what QuickBooks holds). The mapping's SyncToken becomes
    QuickBooks', so FieldSync's next edit of this customer is sent as usual and this version is not listed again."""
    from billing import services as billing_services

    from .models import QuickBooksMappingAudit

    details = {field: value for field, value in change.theirs.items() if field in DETAIL_LABELS}
    if len(details.get("billing_country", "XX")) != 2:
        details.pop("billing_country")  # FieldSync keeps two-letter country codes; QuickBooks' free text stays there
    customer = Customer.objects.get(pk=int(change.local_key))
    billing_services.customer_update(customer=customer, notify=False, **details)
    mapping = QuickBooksMapping.objects.filter(
        realm_id=change.realm_id, kind=Kind.CUSTOMER, local_key=change.local_key, qbo_id=change.qbo_id
    ).first()
    if mapping is not None:
        before = {"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token}
        mapping.sync_token = change.theirs.get("sync_token", mapping.sync_token)
        mapping.save(update_fields=["sync_token", "updated_at"])
        QuickBooksMappingAudit.objects.create(
            realm_id=change.realm_id,
            kind=Kind.CUSTOMER,
            local_key=change.local_key,
            action=QuickBooksMappingAudit.Action.ACCEPT_CUSTOMER,
            before={**before, **{f: change.ours.get(f, "") for f in details}},
            after={"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token, **details},
            note=f"QuickBooks' version accepted (change #{change.pk})",
            by=user,
        )


def _record(mapping: QuickBooksMapping, change: str, ours: dict, theirs: dict, found_by: str) -> list[QuickBooksChange]:
    try:
        with transaction.atomic():
            return [
                QuickBooksChange.objects.create(
                    realm_id=mapping.realm_id,
                    kind=mapping.kind,
                    local_key=mapping.local_key,
                    qbo_id=mapping.qbo_id,
                    change=change,
                    ours=ours,
                    theirs=theirs,
                    found_by=found_by,
                )
            ]
    except IntegrityError:
        return []  # already open for this object: found before


# --- A person decides ----------------------------------------------------------------------------------------------

Resolution = QuickBooksChange.Resolution
RESENDABLE = frozenset({Change.DELETED, Change.VOIDED})


def accept_explained(change: QuickBooksChange) -> tuple[bool, str]:
    """Whether "Accept QuickBooks' version" can make FieldSync match QuickBooks for this change, and what it does
    (or, when it cannot safely, what the person must do instead). No queries: the page calls it for every row."""
    if change.change == Change.RECORDED:
        return False, "Bring it into FieldSync, or ignore it."
    if change.kind == Kind.PAYMENT and change.change in RESENDABLE:
        return True, (
            "FieldSync records the payment as reversed (what is left of it comes off its invoices, which open "
            "again, as in QuickBooks) and forgets the QuickBooks payment; nothing is sent to QuickBooks."
        )
    if change.change == Change.DETAILS:
        return True, ("FieldSync copies QuickBooks' details into its customer; nothing is sent back to QuickBooks.")
    if change.change == Change.VOID_BLOCKED:
        return True, "Closes this: FieldSync leaves the invoice void here and sends nothing."
    if change.change == Change.AMOUNT:
        return False, (
            "FieldSync cannot take another amount from QuickBooks safely: correct the amount in QuickBooks (or send "
            "ours again once it is deleted there), or record the difference in FieldSync (a refund or another "
            "payment), then ignore this."
        )
    if change.change == Change.CUSTOMER:
        return False, (
            "FieldSync cannot move a payment or invoice to another customer: put it back under the right customer "
            "in QuickBooks, or record it again in FieldSync under the other customer, then ignore this."
        )
    return False, (
        "FieldSync cannot take this from QuickBooks safely: void the invoice in FieldSync once nothing is paid on "
        "it (refund its payments first), then ignore this."
    )


def _accept_payment_gone(change: QuickBooksChange, user) -> None:
    """A payment deleted or voided in QuickBooks, accepted: QuickBooks no longer holds the money, so FieldSync
    records what is left of it as reversed (a reversal out of each invoice, which opens again as QuickBooks' did;
    the unapplied credit given back), closes the hand-overs those refunds open at once (QuickBooks has done it
    already), and removes the link to the gone QuickBooks payment (audited), so nothing is compared or sent again.
    Both books then show the invoices open by the same amounts."""
    from billing import selectors as billing_selectors
    from billing import services as billing_services
    from billing.models import ManualHandlingItem

    from .models import QuickBooksMappingAudit

    payment = billing_selectors.payment_with_amounts(Payment.objects.filter(pk=int(change.local_key))).get()
    display = change.get_change_display()
    how = display[0].lower() + display[1:]  # "deleted in QuickBooks"
    reason = f"{change.get_change_display()} (QuickBooks payment {change.qbo_id}); QuickBooks' version accepted"
    today = timezone.localdate()
    method = payment.method if payment.method in Refund.Method.values else Refund.Method.OTHER
    refunds = []
    for application in payment.applications.select_related("invoice").prefetch_related("refunds"):
        left = application.amount - sum((r.amount for r in application.refunds.all()), Decimal("0.00"))
        if left > 0:
            refunds.append(
                billing_services.refund_record(
                    payment=payment,
                    amount=left,
                    reason=reason,
                    refunded_on=today,
                    method=method,
                    kind=Refund.Kind.REVERSAL,
                    invoice=application.invoice,
                    user=user,
                )
            )
    credit = billing_selectors.payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get().unapplied_credit
    if credit > 0:
        refunds.append(
            billing_services.refund_record(
                payment=payment,
                amount=credit,
                reason=reason,
                refunded_on=today,
                method=method,
                kind=Refund.Kind.UNAPPLIED_CREDIT,
                user=user,
            )
        )
    for item in ManualHandlingItem.objects.filter(
        refund__in=refunds, status=ManualHandlingItem.Status.OPEN
    ).select_related(None):
        billing_services.manual_item_mark_handled(
            item=item,
            user=user,
            note=f"Nothing to enter: the payment was {how} already (change #{change.pk}).",
        )
    mapping = QuickBooksMapping.objects.filter(
        realm_id=change.realm_id, kind=Kind.PAYMENT, local_key=change.local_key, qbo_id=change.qbo_id
    ).first()
    if mapping is not None:
        QuickBooksMappingAudit.objects.create(
            realm_id=change.realm_id,
            kind=Kind.PAYMENT,
            local_key=change.local_key,
            action=QuickBooksMappingAudit.Action.UNLINK,
            before={"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token},
            note=f"{change.get_change_display()}; recorded as reversed in FieldSync (change #{change.pk})",
            by=user,
        )
        mapping.delete()


@transaction.atomic
def change_resolve(*, change_id: int, resolution: str, user, note: str = "") -> QuickBooksChange:
    """Close an open change with a person's decision (who, when, note: the audit).

    - accept: FieldSync takes QuickBooks' version where that is safe (accept_explained says what it does, or what to
      do instead): a payment deleted or voided there is recorded as reversed here; nothing is sent.
    - resend: only for a payment deleted or voided in QuickBooks: FieldSync forgets the QuickBooks payment (link
      removed, audited) and the payment is "not exported" again, so the next export (or automatic export) sends it.
    - ignore: nothing changes anywhere.
    Raises ApplicationError (what to do instead) and changes nothing when the decision does not fit."""
    from billing import services as billing_services
    from fieldsync.exceptions import ApplicationError, ConflictError

    from .models import QuickBooksMappingAudit

    change = QuickBooksChange.objects.select_for_update().get(pk=change_id)
    if change.state != QuickBooksChange.State.OPEN:
        raise ConflictError("Someone already dealt with this change.", code="change_resolved")
    if resolution not in Resolution.values:
        raise ApplicationError(f"“{resolution}” is not a decision this page offers.", code="invalid_resolution")
    if resolution == Resolution.BRING_IN or (change.change == Change.RECORDED and resolution == Resolution.ACCEPT):
        raise ApplicationError(
            "A payment recorded in QuickBooks is brought in with “Bring it into FieldSync” (or ignored).",
            code="use_bring_in",
        )
    if resolution == Resolution.ACCEPT:
        available, explanation = accept_explained(change)
        if not available:
            raise ApplicationError(explanation, code="accept_unavailable")
        if change.kind == Kind.PAYMENT and change.change in RESENDABLE:
            _accept_payment_gone(change, user)
        elif change.change == Change.DETAILS:
            _accept_customer_details(change, user)
    if resolution == Resolution.RESEND:
        if change.kind != Kind.PAYMENT or change.change not in RESENDABLE:
            raise ApplicationError(
                "Only a payment deleted or voided in QuickBooks can be sent again; change the other records in "
                "QuickBooks or accept its version.",
                code="not_resendable",
            )
        if Payment.objects.filter(pk=int(change.local_key), origin=Payment.Origin.QUICKBOOKS).exists():
            raise ApplicationError(
                "This payment was recorded in QuickBooks, not sent from FieldSync, so there is nothing of ours to "
                "send; accept QuickBooks' version (FieldSync records it as reversed) or ignore it.",
                code="not_resendable",
            )
        mapping = QuickBooksMapping.objects.filter(
            realm_id=change.realm_id, kind=Kind.PAYMENT, local_key=change.local_key, qbo_id=change.qbo_id
        ).first()
        billing_services.payment_export_undone(
            payment_id=int(change.local_key),
            note=f"{change.get_change_display()}: to be sent again (change #{change.pk})",
            user=user,
        )
        if mapping is not None:
            QuickBooksMappingAudit.objects.create(
                realm_id=change.realm_id,
                kind=Kind.PAYMENT,
                local_key=change.local_key,
                action=QuickBooksMappingAudit.Action.UNLINK,
                before={"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token},
                note=f"{change.get_change_display()}; sent again (change #{change.pk})",
                by=user,
            )
            mapping.delete()
    change.state, change.resolution = QuickBooksChange.State.RESOLVED, resolution
    change.resolved_by, change.resolved_at, change.note = user, timezone.now(), note[:500]
    change.full_clean()
    change.save(update_fields=["state", "resolution", "resolved_by", "resolved_at", "note"])
    return change
