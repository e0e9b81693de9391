"""Business units on the staff pages: people see and act on the units they are members of, one at a time (the
header's switcher); a record of another unit is a 404 everywhere; with one unit nothing changes."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from billing.models import Customer, Payment
from billing.selectors import BUSINESS_UNIT_SESSION_KEY
from billing.services import business_unit_default
from quickbooks_export.models import (
    ExportBatch,
    ExportBatchItem,
    ExportUndo,
    QuickBooksChange,
    QuickBooksMapping,
    ReconciliationRun,
)
from tests.factories import (
    BusinessUnitFactory,
    CustomerFactory,
    JobFactory,
    ManualHandlingItemFactory,
    issued_invoice,
    pay,
)
from tests.quickbooks_export.conftest import make_connection

from .conftest import OFFICE_PERMISSIONS, RECORD_PERMISSIONS, make_user

pytestmark = pytest.mark.django_db
SWITCHER = 'name="business_unit"'


def records_of(unit, *, name: str, realm_id: str) -> dict:
    """One of everything a staff page can show, in `unit`, its company connected as `realm_id`."""
    make_connection(business_unit=unit, realm_id=realm_id, company_name=f"{name} Books")
    customer = CustomerFactory(business_unit=unit, display_name=f"{name} Customer")
    invoice = issued_invoice(customer=customer, amount="80.00", number=f"INV-{name.upper()}")
    payment = pay(invoice, "80.00")
    job = JobFactory(customer=customer, number=f"JOB-{name.upper()}")
    batch = ExportBatch.objects.create(source="page", selection="one", realm_id=realm_id)
    ExportBatchItem.objects.create(batch=batch, payment=payment)
    mapping = QuickBooksMapping.objects.create(realm_id=realm_id, kind="payment", local_key=str(payment.pk), qbo_id="7")
    change = QuickBooksChange.objects.create(
        realm_id=realm_id, kind="payment", local_key=str(payment.pk), qbo_id="7", change="amount", found_by="cdc"
    )
    undo = ExportUndo.objects.create(realm_id=realm_id, batch=batch, plan={})
    item = ManualHandlingItemFactory(payment=payment)
    run = ReconciliationRun.objects.create(
        realm_id=realm_id, date_from="2026-11-01", date_to="2026-11-30", trigger="page", state="done"
    )
    return {
        "customer_id": customer.pk,
        "invoice_id": invoice.pk,
        "job_id": job.pk,
        "payment_id": payment.pk,
        "batch_id": batch.pk,
        "mapping_id": mapping.pk,
        "change_id": change.pk,
        "undo_id": undo.pk,
        "item_id": item.pk,
        "run_id": run.pk,
        "hold_id": 1,
        "action": "unlink",
        "outcome": "all",
        "resolution": "accept",
        "payment": payment,
    }


@pytest.fixture
def two_units():
    main, north = business_unit_default(), BusinessUnitFactory(name="North Shore")
    return (main, records_of(main, name="Main", realm_id="1")), (north, records_of(north, name="North", realm_id="2"))


@pytest.fixture
def main_member(two_units):
    """Office staff of Main only, with every page permission."""
    (main, _), _ = two_units
    user = make_user("mia", *OFFICE_PERMISSIONS, *RECORD_PERMISSIONS)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_payment", "change_job", "manage_quickbooks_connection"])
    )
    main.members.add(user)
    return user


def _staff_urls_with_ids():
    """Every staff page that names one record (records:, exports:, billing:), as (name, its kwargs)."""
    found = []

    def walk(patterns, namespace):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, entry.namespace or namespace)
            elif isinstance(entry, URLPattern) and namespace in ("records", "exports", "billing") and entry.name:
                kwargs = list(entry.pattern.converters)
                if kwargs:
                    found.append((f"{namespace}:{entry.name}", kwargs))

    walk(get_resolver().url_patterns, "")
    return found


STAFF_URLS_WITH_IDS = _staff_urls_with_ids()


def test_the_url_list_is_complete():
    """A new staff page naming a record is checked below without anyone adding it by hand."""
    names = {name for name, _ in STAFF_URLS_WITH_IDS}
    assert {
        "exports:payment_detail",
        "records:customer_detail",
        "exports:batch_detail",
        "billing:refund_create",
        "records:invoice_edit",
        "records:job_edit",
        "exports:invoice_export",
        "exports:reconciliation_detail",
        "exports:reconciliation_csv",
    } <= names
    assert len(names) >= 25


@pytest.mark.parametrize(("name", "kwargs"), STAFF_URLS_WITH_IDS, ids=[n for n, _ in STAFF_URLS_WITH_IDS])
def test_a_record_of_another_unit_is_not_found_on_any_page(client, main_member, two_units, name, kwargs):
    _, (_, north) = two_units
    client.force_login(main_member)
    url = reverse(name, kwargs={key: north[key] for key in kwargs})

    responses = [client.get(url), client.post(url, {"note": "x", "business_unit": ""})]

    assert {r.status_code for r in responses} <= {404, 405}, [r.status_code for r in responses]
    assert 404 in {r.status_code for r in responses}
    north["payment"].refresh_from_db()
    assert north["payment"].export_status == Payment.ExportStatus.NOT_EXPORTED  # nothing happened to it


LIST_MARKERS = {
    "exports:payment_list": lambda r: f"/payments/{r['payment_id']}/",
    "records:customer_list": lambda r: f"/customers/{r['customer_id']}/",
    "records:invoice_list": lambda r: f"/invoices/{r['invoice_id']}/",
    "exports:log": lambda r: f"/exports/{r['batch_id']}/",
    "exports:manual_items": lambda r: f"/manual-handling/{r['item_id']}/",
    "exports:mappings": lambda r: f'id="mapping-{r["mapping_id"]}"',
    "exports:changes": lambda r: f"/quickbooks-changes/{r['change_id']}/",
    "exports:reconciliation": lambda r: f"/reconciliation/{r['run_id']}/",
}


@pytest.mark.parametrize("name", LIST_MARKERS)
def test_lists_show_only_the_unit_the_person_acts_on(client, main_member, two_units, name):
    (_, main), (_, north) = two_units
    client.force_login(main_member)

    html = client.get(reverse(name)).content.decode()

    assert LIST_MARKERS[name](main) in html
    assert LIST_MARKERS[name](north) not in html


def test_ticking_another_units_payment_exports_nothing(client, main_member, two_units):
    _, (_, north) = two_units
    client.force_login(main_member)

    response = client.post(reverse("exports:payments_export"), {"payment": [north["payment"].pk]}, follow=True)

    assert response.status_code == 200
    north["payment"].refresh_from_db()
    assert north["payment"].export_status == Payment.ExportStatus.NOT_EXPORTED
    assert ExportBatch.objects.count() == 2  # only the two the fixture made


def test_a_member_of_one_unit_has_no_switcher_and_cannot_switch_to_another(client, main_member, two_units):
    _, (north, _) = two_units
    client.force_login(main_member)

    assert SWITCHER not in client.get(reverse("exports:payment_list")).content.decode()
    assert client.post(reverse("billing:business_unit_switch"), {"business_unit": north.pk}).status_code == 404
    assert BUSINESS_UNIT_SESSION_KEY not in client.session


def test_the_switcher_changes_the_unit_every_page_acts_on(client, two_units):
    (main, _), (north, _) = two_units
    boss = make_user("boss", is_superuser=True)
    client.force_login(boss)
    page = client.get(reverse("records:customer_list")).content.decode()
    assert SWITCHER in page and "Main Customer" in page and "North Customer" not in page
    assert "Main Books" in client.get(reverse("quickbooks_export:settings")).content.decode()

    response = client.post(reverse("billing:business_unit_switch"), {"business_unit": north.pk})

    assert response.status_code == 302
    page = client.get(reverse("records:customer_list")).content.decode()
    assert "North Customer" in page and "Main Customer" not in page
    assert f'<option value="{north.pk}" selected>' in page
    assert "North Books" in client.get(reverse("quickbooks_export:settings")).content.decode()
    client.post(reverse("records:customer_create"), {"display_name": "Brand New North", "billing_country": "US"})
    assert Customer.objects.get(display_name="Brand New North").business_unit == north


def test_one_unit_looks_as_before_units(client, db):
    """Nobody is a member of anything, and every staff user sees every record, with no switcher."""
    customer = CustomerFactory(display_name="Only Customer")
    pay(issued_invoice(customer=customer, amount="10.00"), "10.00")
    client.force_login(make_user("dana", *OFFICE_PERMISSIONS, *RECORD_PERMISSIONS))

    payments = client.get(reverse("exports:payment_list")).content.decode()
    customers = client.get(reverse("records:customer_list")).content.decode()

    assert "Only Customer" in payments and "Only Customer" in customers
    assert SWITCHER not in payments and "Business unit" not in payments
