"""The shared per-company budget: no sliding minute and no second may ever exceed QuickBooks' limits."""

import pytest

from quickbooks_export.limiter import Limits, acquire

pytestmark = pytest.mark.django_db


class FakeClock:
    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@pytest.mark.parametrize("batch", [False, True])
def test_no_sliding_minute_or_second_ever_exceeds_the_limits(batch):
    limits = Limits(requests_per_minute=26, batches_per_minute=13, requests_per_second=3)
    clock = FakeClock()
    times = []
    for _ in range(60):
        acquire("realm-1", batch=batch, limits=limits, clock=clock, sleep=clock.sleep)
        times.append(clock.now)
        clock.now += 0.05  # each request takes a little time
    assert most_in_any_window(times, 60.0) <= (13 if batch else 26)
    assert most_in_any_window(times, 1.0) <= 3
    # and the budget is used, not wasted: 60 requests fit in about the time the per-minute limit implies
    per_minute = limits.batches_per_minute if batch else limits.requests_per_minute
    assert times[-1] - times[0] < 60 * 60 / per_minute * 1.3


def test_companies_have_separate_budgets():
    limits = Limits(requests_per_minute=13, batches_per_minute=13, requests_per_second=10)
    clock = FakeClock()
    acquire("realm-1", limits=limits, clock=clock, sleep=clock.sleep)
    assert acquire("realm-2", limits=limits, clock=clock, sleep=clock.sleep) == 0.0
    assert acquire("realm-1", limits=limits, clock=clock, sleep=clock.sleep) > 0.0


def test_while_waiting_work_runs_instead_of_sleeping():
    limits = Limits(requests_per_minute=13, batches_per_minute=13, requests_per_second=10)
    clock = FakeClock()
    acquire("realm-1", limits=limits, clock=clock, sleep=clock.sleep)
    done = []

    def work():
        if len(done) < 2:
            done.append(clock.now)
            return True
        return False

    acquire("realm-1", limits=limits, clock=clock, sleep=clock.sleep, while_waiting=work)
    assert len(done) == 2
