"""Health endpoints for load balancers and orchestrators: no login, no secrets, JSON, never throttled.

- /health/live: the process answers. Touches nothing else (no database), so a database outage never gets healthy
  web processes restarted in a loop.
- /health/ready: the database answers, an export worker (django-q2 cluster) sent a heartbeat recently, and the state
  of each business unit's QuickBooks connection (connected, needs_reconnect, not_connected). 503 when the database
  is unreachable or no worker is alive (with
  FIELDSYNC_READY_REQUIRE_WORKER, on by default). A QuickBooks connection that needs reconnecting is reported but
  does not make the process unready: restarting or removing it from the load balancer would not help — a person must
  reconnect, and the pages say so.

django-q2 clusters save their status (a Stat with a `timestamp`) to the broker every cycle of their guard, with a
3-second expiry: the cache for the ORM broker (our database cache), Redis for the Redis broker. `Stat.get_all()` reads
the ones still there; no stat means no cluster sent a heartbeat in the last few seconds.
"""

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


@never_cache
def live_view(request):
    return JsonResponse({"status": "ok"})


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("Readiness: the database did not answer: %s", type(exc).__name__)
        return {"ok": False, "error": "the database did not answer"}
    return {"ok": True}


def _workers() -> dict:
    from django_q.status import Stat

    try:
        stats = Stat.get_all()
    except Exception as exc:  # a broker outage (Redis down) is "no worker", not a crash of the probe
        logger.warning("Readiness: could not read the export workers' heartbeats: %s", type(exc).__name__)
        stats = []
    beats = [stat.timestamp for stat in stats if getattr(stat, "timestamp", None)]
    newest = max(beats) if beats else None
    age = round((timezone.now() - newest).total_seconds(), 1) if newest else None
    alive = age is not None and age <= settings.FIELDSYNC_READY_MAX_HEARTBEAT_AGE_SECONDS
    return {
        "ok": alive or not settings.FIELDSYNC_READY_REQUIRE_WORKER,
        "clusters": len(stats),
        "newest_heartbeat_age_seconds": age,
    }


def _quickbooks() -> list[dict]:
    """One entry per business unit, by name: its slug, its current connection's row number (or None) and the state.

    A unit never connected (or disconnected) says "not_connected" beside units that are connected: with one company
    per unit, an orchestrator must see which store's books are not being fed. Two queries, whatever the number of
    units.
    """
    from billing.models import BusinessUnit
    from quickbooks_export.models import QuickBooksConnection

    states = {
        QuickBooksConnection.State.CONNECTED: "connected",
        QuickBooksConnection.State.NEEDS_RECONNECT: "needs_reconnect",
    }
    current = {
        unit_id: (pk, state)
        for unit_id, pk, state in QuickBooksConnection.objects.filter(is_current=True).values_list(
            "business_unit_id", "pk", "state"
        )
    }
    listed = []
    for unit_id, slug in BusinessUnit.objects.order_by("name", "id").values_list("pk", "slug"):
        pk, state = current.get(unit_id, (None, None))
        listed.append({"business_unit": slug, "connection": pk, "state": states.get(state, "not_connected")})
    return listed


@never_cache
def ready_view(request):
    database = _database()
    body = {"database": database}
    if database["ok"]:
        body["workers"] = _workers()
        body["quickbooks"] = _quickbooks()
    ready = database["ok"] and body["workers"]["ok"]
    body = {"status": "ready" if ready else "not_ready", **body}
    return JsonResponse(body, status=200 if ready else 503)
