"""A payment's export history in words office staff read, with the technical detail kept for whoever needs it.

The export engine records every call it makes (ExportAttempt: "create Item", "find Customer by e-mail" ...) and what
became of the payment in each export (ExportBatchItem). A page shows one line per event, saying what FieldSync did
in QuickBooks and what came of it; the operation, QuickBooks Id, request id and error code are folded under it.
A failed export always shows its failure, also when the engine stopped before calling QuickBooks (a check of ours,
such as an invoice already in QuickBooks with another total), so the history never lists only what went well.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime

from .models import ExportAttempt, ExportBatchItem
from .selectors import payment_export_attempts

Outcome = ExportAttempt.Outcome
NOUNS = {"Customer": "the customer", "Item": "the service", "Invoice": "the invoice", "Payment": "the payment"}
_OPERATION = re.compile(
    r"(?P<verb>create|find|update|check) (?P<entity>\w+)(?: by (?P<by>[\w -]+)| before payments)?(?P<batch> \(batch\))?"
)


def is_quickbooks_code(code: str) -> bool:
    """QuickBooks' own error codes are numbers ("6140"); anything else is a FieldSync check ("invoice_conflict")."""
    return code.isdigit()


def error_code_words(code: str) -> str:
    if not code:
        return ""
    if is_quickbooks_code(code):
        return f"QuickBooks error {code}"
    return f"FieldSync check “{code}”"


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    tone: str  # ok, info, bad: a CSS class of .badge
    label: str
    text: str
    detail: list[str] = field(default_factory=list)


def _name(attempt: ExportAttempt, entity: str) -> str:
    # Items are keyed by their lower-cased name; the others by our id, which means nothing to a reader.
    if entity == "Item" and attempt.local_key:
        return f"the service “{attempt.local_key}”"
    return NOUNS.get(entity, entity.lower())


def _line_of_attempt(attempt: ExportAttempt) -> HistoryLine:
    match = _OPERATION.fullmatch(attempt.operation)
    verb, entity, by = (match["verb"], match["entity"], match["by"]) if match else ("", "", None)
    what = _name(attempt, entity)
    qbo = f" (QuickBooks number {attempt.qbo_id})" if attempt.qbo_id else ""
    if attempt.outcome == Outcome.ERROR and verb == "check":
        # The check before any payment goes (issue 9): nothing was refused, FieldSync held the invoice's payments.
        text = f"Checked {what} in QuickBooks and held its payments: {attempt.message or 'no reason given'}"
        tone, label = "warn", "Held"
    elif attempt.outcome == Outcome.ERROR:
        text = f"QuickBooks refused {what}: {attempt.message or 'no reason given'}"
        tone, label = "bad", "Refused"
    elif verb == "find" and attempt.outcome == Outcome.LINKED:
        text = f"Found {what} already in QuickBooks{f' (same {by})' if by else ''} and used it{qbo}"
        tone, label = "info", "Found"
    elif verb == "find":
        text = f"Looked for {what} in QuickBooks{f' by {by}' if by else ''}: not there yet, so it will be added"
        tone, label = "info", "Checked"
    elif verb == "create":
        text = f"Added {what} to QuickBooks{qbo}"
        tone, label = "ok", "Added"
    else:
        text = f"Updated {what} in QuickBooks{qbo}"
        tone, label = "ok", "Updated"
    detail = [f"Operation: {attempt.operation}"]
    if attempt.qbo_id:
        detail.append(f"QuickBooks Id: {attempt.qbo_id}")
    if attempt.request_id:
        detail.append(f"Request id: {attempt.request_id}")
    if attempt.error_code:
        detail.append(error_code_words(attempt.error_code))
    if attempt.batch_id:
        detail.append(f"Export #{attempt.batch_id}")
    return HistoryLine(at=attempt.at, tone=tone, label=label, text=text, detail=detail)


def payment_history(*, payment_id: int, limit: int = 50) -> list[HistoryLine]:
    """The newest `limit` events of one payment's exports, newest first: two queries."""
    attempts = list(payment_export_attempts(payment_id=payment_id)[:limit])
    lines = [_line_of_attempt(attempt) for attempt in attempts]
    refused_in = {attempt.batch_id for attempt in attempts if attempt.outcome == Outcome.ERROR}
    failures = ExportBatchItem.objects.filter(payment_id=payment_id, outcome=ExportBatchItem.Outcome.FAILED)
    for item in failures.order_by("-id")[:limit]:
        if item.batch_id in refused_in:
            continue  # the refusal is already a line of its own
        detail = [f"Export #{item.batch_id}"] + ([error_code_words(item.error_code)] if item.error_code else [])
        lines.append(
            HistoryLine(
                at=item.updated_at,
                tone="bad",
                label="Failed",
                text=f"Export #{item.batch_id} stopped for this payment: {item.message or 'no reason recorded'}",
                detail=detail,
            )
        )
    lines.sort(key=lambda line: line.at, reverse=True)
    return lines[:limit]
