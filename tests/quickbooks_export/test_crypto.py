import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db

from quickbooks_export import crypto
from quickbooks_export.crypto import TokenDecryptionError
from quickbooks_export.models import QuickBooksConnection

ACCESS = "access-token-PLAINTEXT-abc123"
REFRESH = "refresh-token-PLAINTEXT-xyz789"


@pytest.fixture
def stored_connection(settings):
    settings.FIELDSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    connection = QuickBooksConnection(realm_id="9130350000000001", company_name="Acme Plumbing")
    connection.set_tokens(access_token=ACCESS, refresh_token=REFRESH, access_expires_in=3600, refresh_expires_in=86400)
    connection.save()
    return connection


def _raw_token_columns(pk: int) -> tuple[str, str]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_token_ciphertext, refresh_token_ciphertext FROM quickbooks_export_quickbooksconnection "
            "WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


@pytest.mark.django_db
def test_tokens_are_unreadable_in_the_database(stored_connection):
    access_column, refresh_column = _raw_token_columns(stored_connection.pk)

    assert ACCESS not in access_column and REFRESH not in refresh_column
    assert "PLAINTEXT" not in access_column + refresh_column
    reloaded = QuickBooksConnection.objects.get(pk=stored_connection.pk)
    assert reloaded.get_access_token() == ACCESS
    assert reloaded.get_refresh_token() == REFRESH


@pytest.mark.django_db
def test_decrypting_with_a_wrong_key_fails_without_showing_the_token(stored_connection, settings):
    settings.FIELDSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    reloaded = QuickBooksConnection.objects.get(pk=stored_connection.pk)

    with pytest.raises(TokenDecryptionError) as caught:
        reloaded.get_refresh_token()

    assert REFRESH not in str(caught.value) and reloaded.refresh_token_ciphertext not in str(caught.value)


@pytest.mark.django_db
def test_tokens_never_appear_in_str_or_repr(stored_connection):
    for text in (str(stored_connection), repr(stored_connection)):
        assert ACCESS not in text and REFRESH not in text
        assert stored_connection.access_token_ciphertext not in text


@pytest.mark.django_db
def test_rotate_encryption_keys_reencrypts_with_the_newest_key(stored_connection, settings):
    old_key = settings.FIELDSYNC_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELDSYNC_ENCRYPTION_KEYS = [new_key, old_key]
    before = _raw_token_columns(stored_connection.pk)

    call_command("rotate_encryption_keys", stdout=io.StringIO())

    after = _raw_token_columns(stored_connection.pk)
    assert after != before
    assert Fernet(new_key.encode()).decrypt(after[0].encode()).decode() == ACCESS
    # The old key can be dropped now.
    settings.FIELDSYNC_ENCRYPTION_KEYS = [new_key]
    reloaded = QuickBooksConnection.objects.get(pk=stored_connection.pk)
    assert (reloaded.get_access_token(), reloaded.get_refresh_token()) == (ACCESS, REFRESH)
    assert reloaded.token_version == stored_connection.token_version  # the tokens themselves did not change


def test_first_key_encrypts_and_every_key_decrypts(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELDSYNC_ENCRYPTION_KEYS = [second]
    made_with_second = crypto.encrypt("secret")
    settings.FIELDSYNC_ENCRYPTION_KEYS = [first, second]

    assert crypto.decrypt(made_with_second) == "secret"
    assert Fernet(first.encode()).decrypt(crypto.encrypt("secret").encode()) == b"secret"
