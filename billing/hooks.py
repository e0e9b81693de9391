"""A small seam for apps that react to billing events without billing knowing them.

Billing never imports quickbooks_export; instead the export app registers a listener at start-up (its
AppConfig.ready). Listeners run after the transaction that made the change commits (never inside it, so a listener
may call out or queue work), and a failing listener is logged, never undoing or failing the billing write.
"""

from collections.abc import Callable

from django.db import transaction

_invoice_paid_listeners: list[Callable[[int], None]] = []


def invoice_paid_listen(listener: Callable[[int], None]) -> None:
    """Call `listener(invoice_id)` after each commit in which an invoice became fully paid (registered once)."""
    if listener not in _invoice_paid_listeners:
        _invoice_paid_listeners.append(listener)


def invoice_paid_notify(*, invoice_id: int) -> None:
    """Called by billing.services under the invoice's row lock; the listeners run on commit."""
    for listener in _invoice_paid_listeners:
        transaction.on_commit(lambda listener=listener: listener(invoice_id), robust=True)


_customer_changed_listeners: list[Callable[[int], None]] = []


def customer_changed_listen(listener: Callable[[int], None]) -> None:
    """Call `listener(customer_id)` after each commit that changed a customer's details (registered once)."""
    if listener not in _customer_changed_listeners:
        _customer_changed_listeners.append(listener)


def customer_changed_notify(*, customer_id: int) -> None:
    for listener in _customer_changed_listeners:
        transaction.on_commit(lambda listener=listener: listener(customer_id), robust=True)


_invoice_voided_listeners: list[Callable[[int], None]] = []


def invoice_voided_listen(listener: Callable[[int], None]) -> None:
    """Call `listener(invoice_id)` after each commit that voided an invoice (registered once)."""
    if listener not in _invoice_voided_listeners:
        _invoice_voided_listeners.append(listener)


def invoice_voided_notify(*, invoice_id: int) -> None:
    for listener in _invoice_voided_listeners:
        transaction.on_commit(lambda listener=listener: listener(invoice_id), robust=True)


_invoice_changed_listeners: list[Callable[[int], None]] = []


def invoice_changed_listen(listener: Callable[[int], None]) -> None:
    """Call `listener(invoice_id)` after each commit that changed an issued invoice's lines, tax or dates."""
    if listener not in _invoice_changed_listeners:
        _invoice_changed_listeners.append(listener)


def invoice_changed_notify(*, invoice_id: int) -> None:
    for listener in _invoice_changed_listeners:
        transaction.on_commit(lambda listener=listener: listener(invoice_id), robust=True)
