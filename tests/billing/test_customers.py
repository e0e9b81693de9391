"""customer_update: the record pages' edit of a customer goes through a service like every other write."""

import pytest

from billing import services
from fieldsync.exceptions import ApplicationError
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_customer_update_changes_the_fields_given_and_normalises_the_email():
    customer = CustomerFactory(display_name="Old", email="old@example.com", phone="555-0100")
    updated = services.customer_update(customer=customer, display_name=" New ", email="New@Example.COM")
    customer.refresh_from_db()
    assert (updated.display_name, customer.display_name, customer.email, customer.phone) == (
        "New",
        "New",
        "new@example.com",
        "555-0100",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"display_name": ""}, "display_name: This field cannot be blank."),
        ({"email": "not-an-address"}, "email: Enter a valid email address."),
        ({"created_at": "2020-01-01"}, "These customer fields cannot change: created_at."),
    ],
)
def test_customer_update_refuses_bad_changes_and_changes_nothing(changes, message):
    customer = CustomerFactory(display_name="Kept", email="kept@example.com")
    with pytest.raises(ApplicationError) as refused:
        services.customer_update(customer=customer, **changes)
    assert refused.value.message == message
    customer.refresh_from_db()
    assert (customer.display_name, customer.email) == ("Kept", "kept@example.com")
