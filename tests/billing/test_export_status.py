import pytest

from billing import services
from billing.models import Payment, PaymentExportTransition
from billing.services import EXPORT_TRANSITIONS, IllegalExportTransition
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


def test_every_status_has_its_allowed_moves_listed():
    assert set(EXPORT_TRANSITIONS) == set(S.values)


def test_transition_moves_the_status_and_writes_history():
    payment = PaymentFactory()
    user = UserFactory()
    services.payment_export_status_transition(payment_id=payment.pk, to_status=S.QUEUED, user=user, note="batch 4")
    services.payment_export_status_transition(payment_id=payment.pk, to_status=S.EXPORTING)
    payment = services.payment_export_status_transition(
        payment_id=payment.pk, to_status=S.EXPORTED, export_reference="311"
    )
    assert payment.export_status == S.EXPORTED
    assert payment.export_reference == "311"
    assert payment.export_status_changed_at is not None
    history = list(PaymentExportTransition.objects.filter(payment=payment).values_list("from_status", "to_status"))
    assert history == [(S.NOT_EXPORTED, S.QUEUED), (S.QUEUED, S.EXPORTING), (S.EXPORTING, S.EXPORTED)]
    assert PaymentExportTransition.objects.first().by == user


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.NOT_EXPORTED, S.EXPORTED),
        (S.NOT_EXPORTED, S.EXPORTING),
        (S.EXPORTED, S.QUEUED),
        (S.EXPORTED, S.NOT_EXPORTED),
        (S.EXPORTED_MANUALLY, S.QUEUED),
        (S.EXCLUDED, S.QUEUED),
    ],
)
def test_illegal_moves_are_refused_and_change_nothing(start, target):
    payment = PaymentFactory(export_status=start)
    with pytest.raises(IllegalExportTransition) as excinfo:
        services.payment_export_status_transition(payment_id=payment.pk, to_status=target)
    assert "cannot go from" in excinfo.value.message
    payment.refresh_from_db()
    assert payment.export_status == start
    assert not PaymentExportTransition.objects.exists()


def test_expected_from_makes_a_claim_that_only_one_caller_wins():
    payment = PaymentFactory(export_status=S.QUEUED)
    services.payment_export_status_transition(payment_id=payment.pk, to_status=S.EXPORTING, expected_from={S.QUEUED})
    with pytest.raises(IllegalExportTransition) as excinfo:
        services.payment_export_status_transition(
            payment_id=payment.pk, to_status=S.EXPORTING, expected_from={S.QUEUED}
        )
    assert excinfo.value.extra == {"current": S.EXPORTING}
    assert PaymentExportTransition.objects.count() == 1
