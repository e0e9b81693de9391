"""Batched look-ups: what an export run reads from QuickBooks, one query for many objects instead of one per object.

Intuit meters reads and queries, not writes (QBO.md, "Limits and cost": the free tier has 500,000 reads a month,
then reads are blocked), so the export engine finds existing customers, items and invoices like this:

- Anything already in the mapping table is never looked up by name (services.py re-checks mapped invoices in
  batches before paying them; a stale customer or item mapping is caught by the 610 it causes).
- Before a chunk's customers, items and invoices are resolved, everything the chunk *and the payments queued after
  it* (LOOKAHEAD_PAYMENTS) need that is neither mapped nor looked up yet in this run is read in a few `IN (...)`
  queries: customers by PrimaryEmailAddr (or DisplayName, for customers without an e-mail), items by Name (both
  names an item may get), invoices by DocNumber. The answers are kept for the run in a LookupCache.
- Each answer is used the way a single query's answer was (services.py applies the same rules: same party, not
  mapped to another of ours, usable item type). A look-up that turns stale before its create can only make the
  create fail safely: QuickBooks refuses a duplicate name (6240) or document number (6140). An invoice found by its
  number is linked, then read again (in a batch) before any payment is posted against it.

QuickBooks documents `IN` for filterable fields ("Query operations and syntax": operators IN, =, <, >, <=, >=,
LIKE); that PrimaryEmailAddr takes IN like DisplayName does is *unconfirmed* (it is documented as filterable). No
statement-length limit is documented either (python-quickbooks POSTs the statement as the request body); each
statement is kept to MAX_IN_VALUES values and MAX_STATEMENT_CHARS characters, far from any URL or body limit.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from billing.models import Customer

from . import mappers

MAX_IN_VALUES = 100  # values per IN list: answers stay well under QuickBooks' 1,000 rows a page
MAX_STATEMENT_CHARS = 4000  # characters per statement (no documented limit: kept modest)
LOOKAHEAD_PAYMENTS = 300  # queued payments whose customers, items and invoices one round of look-ups covers

Query = Callable[[str], list[dict]]


def in_statements(entity: str, field_name: str, values: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(statement, its values): `SELECT * FROM <entity> WHERE <field> IN (...)` statements that together cover every
    value once (quoted with QuickBooks' backslash escapes), each within MAX_IN_VALUES values and MAX_STATEMENT_CHARS
    characters."""
    head = f"SELECT * FROM {entity} WHERE {field_name} IN ("  # noqa: S608 - QuickBooks' query language, values quoted
    batches: list[list[str]] = []
    length = 0
    for value in dict.fromkeys(values):
        literal = mappers.quote(value)
        if len(head) + len(literal) + 1 > MAX_STATEMENT_CHARS:
            raise ValueError(f"{entity} {field_name} {value[:40]}… is too long to look up")
        if not batches or len(batches[-1]) == MAX_IN_VALUES or length + len(literal) + 2 > MAX_STATEMENT_CHARS:
            batches.append([])
            length = len(head) + 1
        batches[-1].append(value)
        length += len(literal) + 2
    return [(head + ", ".join(mappers.quote(v) for v in batch) + ")", batch) for batch in batches]


def customer_lookup_key(customer: Customer) -> tuple[str, str]:
    """How a customer is found: ("email", its e-mail, lower-cased) or, without one, ("name", its first DisplayName
    case-folded: QuickBooks' names are unique case-insensitively)."""
    if customer.email.strip():
        return "email", customer.email.strip().lower()
    return "name", mappers.customer_display_names(customer)[0].casefold()


@dataclass
class LookupCache:
    """What this run has read from QuickBooks by e-mail, name and number. A key is present once looked up (with the
    rows found, maybe none); absent means "not looked up yet"."""

    customers: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    items: dict[str, list[dict]] = field(default_factory=dict)  # case-folded Name -> rows
    invoices: dict[str, dict | None] = field(default_factory=dict)  # DocNumber -> row, None when not in QuickBooks

    def customer_rows(self, customer: Customer) -> list[dict] | None:
        return self.customers.get(customer_lookup_key(customer))

    def item_rows(self, name: str) -> list[dict] | None:
        return self.items.get(name.casefold())

    def has_invoice(self, number: str) -> bool:
        return number in self.invoices

    def invoice_row(self, number: str) -> dict | None:
        return self.invoices.get(number)

    def needs(
        self, *, customers: Iterable[Customer], item_names: Iterable[str], invoice_numbers: Iterable[str]
    ) -> bool:
        return (
            any(customer_lookup_key(c) not in self.customers for c in customers)
            or any(name.casefold() not in self.items for name in item_names)
            or any(number not in self.invoices for number in invoice_numbers)
        )

    def fill(
        self,
        query: Query,
        *,
        customers: Iterable[Customer],
        item_names: Iterable[str],
        invoice_numbers: Iterable[str],
    ) -> None:
        """Look up, in batches, whatever of these is not looked up yet. `query` runs one statement (every page)."""
        emails: dict[str, str] = {}  # lower-cased -> as we hold it (sent as held, as the single look-up did)
        names: dict[str, str] = {}
        for customer in customers:
            kind, key = customer_lookup_key(customer)
            if (kind, key) in self.customers:
                continue
            if kind == "email":
                emails.setdefault(key, customer.email.strip())
            else:
                names.setdefault(key, mappers.customer_display_names(customer)[0])
        by_email = {value: key for key, value in emails.items()}
        for statement, batch in in_statements("Customer", "PrimaryEmailAddr", emails.values()):
            rows = query(statement)
            for value in batch:
                self.customers.setdefault(("email", by_email[value]), [])
            for row in rows:
                self.customers.setdefault(("email", mappers.qbo_email(row)), []).append(row)
        by_name = {value: key for key, value in names.items()}
        for statement, batch in in_statements("Customer", "DisplayName", names.values()):
            rows = query(statement)
            for value in batch:
                self.customers.setdefault(("name", by_name[value]), [])
            for row in rows:
                self.customers.setdefault(("name", str(row.get("DisplayName", "")).casefold()), []).append(row)

        wanted = {name.casefold(): name for name in item_names if name.casefold() not in self.items}
        for statement, batch in in_statements("Item", "Name", wanted.values()):
            rows = query(statement)
            for value in batch:
                self.items.setdefault(value.casefold(), [])
            for row in rows:
                self.items.setdefault(str(row.get("Name", "")).casefold(), []).append(row)

        numbers = [number for number in dict.fromkeys(invoice_numbers) if number not in self.invoices]
        for statement, batch in in_statements("Invoice", "DocNumber", numbers):
            rows = query(statement)
            for number in batch:
                self.invoices.setdefault(number, None)
            for row in rows:
                if row.get("DocNumber") in self.invoices and self.invoices[row["DocNumber"]] is None:
                    self.invoices[row["DocNumber"]] = row
