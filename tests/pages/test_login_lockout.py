"""Brute-force protection on the staff login and the admin login (issue 11, item 6): django-axes."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def clerk(settings):
    settings.AXES_FAILURE_LIMIT = 5
    return get_user_model().objects.create_user(username="clerk", password=PASSWORD, is_staff=True)


def _login(client, url: str, password: str, username: str = "clerk"):
    return client.post(url, {"username": username, "password": password})


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url_name", ["login", "admin:login"])
def test_after_five_wrong_passwords_even_the_right_one_is_refused(client, clerk, url_name):
    url = reverse(url_name)
    answers = [_login(client, url, f"guess-{n}") for n in range(5)]

    assert [a.status_code for a in answers[:4]] == [200] * 4  # the form again, with its error
    assert answers[4].status_code == 429
    locked = _login(client, url, PASSWORD)

    assert locked.status_code == 429 and not _signed_in(client)
    assert "axes_reset_username" in locked.content.decode()


def test_the_lock_covers_both_logins(client, clerk):
    for n in range(5):
        _login(client, reverse("admin:login"), f"guess-{n}")

    assert _login(client, reverse("login"), PASSWORD).status_code == 429
    assert not _signed_in(client)


def test_other_accounts_are_not_locked_from_other_addresses(client, clerk):
    get_user_model().objects.create_user(username="dana", password=PASSWORD)
    for n in range(5):
        _login(client, reverse("login"), f"guess-{n}")
    elsewhere = Client(REMOTE_ADDR="10.1.1.2")

    response = _login(elsewhere, reverse("login"), PASSWORD, username="dana")

    assert response.status_code == 302 and _signed_in(elsewhere)


def test_one_address_trying_many_usernames_is_locked(client, clerk):
    get_user_model().objects.create_user(username="dana", password=PASSWORD)
    for n in range(5):
        _login(client, reverse("login"), "wrong", username=f"user{n}")

    assert _login(client, reverse("login"), PASSWORD, username="dana").status_code == 429
    assert not _signed_in(client)


def test_the_locked_username_is_locked_from_every_address(client, clerk):
    for n in range(5):
        _login(Client(REMOTE_ADDR=f"10.2.0.{n}"), reverse("login"), f"guess-{n}")

    elsewhere = Client(REMOTE_ADDR="10.2.0.99")
    assert _login(elsewhere, reverse("login"), PASSWORD).status_code == 429 and not _signed_in(elsewhere)


def test_axes_reset_username_unlocks_the_account(client, clerk):
    for n in range(5):
        _login(client, reverse("login"), f"guess-{n}")

    call_command("axes_reset_username", "clerk")
    call_command("axes_reset_ip", "127.0.0.1")

    assert _login(client, reverse("login"), PASSWORD).status_code == 302 and _signed_in(client)


def test_a_success_before_the_limit_resets_the_count(client, clerk):
    for n in range(4):
        _login(client, reverse("login"), f"guess-{n}")
    assert _login(client, reverse("login"), PASSWORD).status_code == 302
    client.post(reverse("logout"))

    for n in range(4):
        _login(client, reverse("login"), f"again-{n}")
    assert _login(client, reverse("login"), PASSWORD).status_code == 302
