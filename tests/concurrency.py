"""Running calls truly at once, each in its own thread and database connection (for PostgreSQL race tests)."""

import threading
import time

from django.db import connection


def run_at_once(*calls, stagger: float = 0.0) -> list:
    """Release every call together (optionally `stagger` seconds apart); return each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=10)
            time.sleep(index * stagger)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results
