"""`make prod-check`: FieldSync as production runs it, end to end on this machine, then everything stopped.

    .venv/bin/python deploy/prod_check.py [--payments 100] [--keep-logs]

1. A fresh PostgreSQL database of this checkout's own (fieldsync_prodcheck_<folder> on 127.0.0.1:5432, so two
   worktrees can run the check at once; PROD_CHECK_DATABASE_URL chooses another), dropped at the end.
2. Production settings (fieldsync.settings.production) from dummy, production-shaped environment values; QuickBooks is
   the local sandbox through the one documented escape hatch, FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS (every QuickBooks
   URL on this machine; the checks report it as fieldsync.W001, so no `check --deploy --fail-level WARNING` passes
   with it). Static files collected (hashed, compressed) into a temporary STATIC_ROOT.
3. deploy/Procfile's commands: `release` (migrate, collectstatic), `web` (gunicorn, 2 workers, gunicorn.conf.py) and
   `worker` twice (two qcluster processes sharing the PostgreSQL (ORM) broker); the local QuickBooks sandbox; ports
   chosen free now (never 8000/8765); JSON logs.
4. Two business units (Main, North Store), each with --payments open invoices of its own customers and an API client
   scoped to it alone; a client is refused the other unit's invoice and, later, its payment.
5. /health/live and /health/ready (a worker heartbeat) answer; headless Chromium (Debian's /usr/bin/chromium, never a
   downloaded browser) signs in, loads the payments page and asserts every static asset is a hashed file served with
   200 (and compressed on request), loads the API docs, and connects each unit (chosen with the unit switcher) to a
   new company of its own through the sandbox's consent page. Meanwhile the two API clients post --payments payments
   each (4 requests at a time).
6. Both units exported at once through the API; the two batches must overlap in time. Each company, queried over
   the QuickBooks API, holds exactly its unit's payments (by FieldSync's marker), each once, none of the other's;
   /health/ready lists both units' connections as connected and /metrics counts the exported payments and the
   QuickBooks calls.
7. Everything stopped (also on failure or Ctrl-C). Prints each step with its time; exit status 0 only if all passed.
   On failure: the step that failed, the end of every process's log, and the logs kept.

Browser requests carry `X-Forwarded-Proto: https`, as a TLS-terminating proxy in front of gunicorn would add.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("FIELDSYNC_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "prod-check-only-" + uuid.uuid4().hex[:12]
METRICS_TOKEN = "prod-check-metrics-" + uuid.uuid4().hex
HASHED_ASSET = re.compile(r"/static/.+\.[0-9a-f]{12}\.(css|js|svg|png|ico|woff2?)$")
STARTED = time.monotonic()


CURRENT = ["starting"]  # what the check is doing, named in the failure message


def step(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


def doing(what: str) -> None:
    CURRENT[0] = what


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in (8000, 8765):  # the product's `make run` ports
            return port


class Processes:
    """The processes this check starts, each in its own process group, all stopped on exit."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict) -> None:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.running[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        step(f"started {name} (pid {self.running[name].pid})")

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with status {process.returncode}; see {self.log_dir / name}.log")

    def stop_all(self) -> None:
        # SIGTERM to each main process (gunicorn's master, django-q2's cluster), which stops its own children; whatever
        # is left of a group after the grace period is killed.
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, process in self.running.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # nothing of the group outlives the check
            step(f"stopped {name} (exit status {process.returncode})")

    def print_logs(self, lines: int = 40) -> None:
        """The end of every process's log, for a failed run."""
        for name in self.running:
            path = self.log_dir / f"{name}.log"
            tail = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            print(f"\n----- last {len(tail)} lines of {path} -----", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr, flush=True)


def http(method: str, url: str, *, body=None, headers=None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """One request, as through the TLS-terminating proxy a deployment has in front of gunicorn (which adds
    X-Forwarded-Proto); /health/ is exempt from the https redirect, so probes inside the network need no proxy."""
    data = json.dumps(body).encode() if body is not None else None
    proxied = {} if "/health/" in url else {"X-Forwarded-Proto": "https"}
    request = urllib.request.Request(url, data=data, method=method, headers={**proxied, **(headers or {})})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(what: str, condition, timeout: float, processes: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(OSError):
            if condition():
                return
        time.sleep(0.3)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def run(command: list[str], env: dict) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100, help="payments posted and exported in EACH unit")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (their folder is printed)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: apt-get install chromium")

    work = Path(tempfile.mkdtemp(prefix="fieldsync-prod-check-"))
    database_url = os.environ.get("PROD_CHECK_DATABASE_URL") or default_database_url()
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"PROD_CHECK_DATABASE_URL must end in a plain database name (letters, digits, _): {name!r}")
    # dropdb/createdb on the server the URL names (a password, if any, from PGPASSWORD or ~/.pgpass).
    server = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    web_port, sandbox_port = free_port(), free_port()
    web, sandbox = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sandbox_port}"
    step(f"database {name}; web {web}; QuickBooks sandbox {sandbox}; logs in {work}")

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELDSYNC_", "QBO_", "REDIS_"))}
    env = {
        **base_env,
        # Production-shaped, not secret (as .ci/run's check --deploy); production settings refuse the shipped ones.
        "DJANGO_SETTINGS_MODULE": "fieldsync.settings.production",
        "DJANGO_SECRET_KEY": "prod-check-only-dummy-secret-key-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_CSRF_TRUSTED_ORIGINS": web,
        "DJANGO_STATIC_ROOT": str(work / "static"),
        "FIELDSYNC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),  # a fresh key for this run only
        "DATABASE_URL": database_url,
        "FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS": "true",
        "QBO_ENVIRONMENT": "local",
        "QBO_SANDBOX_URL": sandbox,
        "QBO_DISCOVERY_URL": f"{sandbox}/.well-known/openid_configuration",
        "QBO_API_BASE_URL": sandbox,
        "QBO_REDIRECT_URI": f"{web}/quickbooks/callback/",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # intuit-oauth over http to the sandbox on this machine only
        "FIELDSYNC_LOG_FORMAT": "json",
        "FIELDSYNC_METRICS_TOKEN": METRICS_TOKEN,
        "FIELDSYNC_WORKERS": "2",
        "FIELDSYNC_API_RATE_PER_CLIENT": "100000/minute",  # the check posts as fast as it can
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    manage = [sys.executable, "manage.py"]

    processes = Processes(work)
    created = passed = False
    try:
        doing("creating the database")
        subprocess.run(["dropdb", "--if-exists", *server, name], check=True)
        subprocess.run(["createdb", *server, name], check=True)
        created = True

        doing("running the Procfile's release command (migrate, collectstatic)")
        procfile = read_procfile()
        timer = time.monotonic()
        output = run(["sh", "-c", procfile["release"]], env)
        assert "fieldsync.W001" in output, "the escape hatch must announce itself"
        copied = re.search(r"(\d+) static files? copied", output)
        step(
            f"Procfile release (migrate, collectstatic: {copied.group(0) if copied else '?'}) in "
            f"{time.monotonic() - timer:.1f} s; production settings reported fieldsync.W001 as they must"
        )

        doing("preparing two business units, their API clients and invoices")
        units = prepare(env, args.payments)

        doing("starting the QuickBooks sandbox, gunicorn and two qclusters")
        processes.start(
            "quickbooks-sandbox",
            [*manage, "qbo_sandbox", "--port", str(sandbox_port), "--data-file", ""],
            {**env, "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base"},  # the stand-in for Intuit, not FieldSync
        )
        # The Procfile's own web and worker commands, with the environment a platform would give them.
        # gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): this run's goes in its
        # own folder, so two checks at once (two worktrees) do not take over each other's.
        web_env = {
            **env,
            "PORT": str(web_port),
            "BIND_ADDRESS": "127.0.0.1",
            "WEB_CONCURRENCY": "2",
            "GUNICORN_CMD_ARGS": f"--control-socket {work / 'gunicorn.ctl'}",
        }
        processes.start("gunicorn", ["sh", "-c", procfile["web"]], web_env)
        for n in (1, 2):
            processes.start(f"qcluster-{n}", ["sh", "-c", procfile["worker"]], env)
        check_everything(web, sandbox, units, args.payments, processes)
        passed = True
    except BaseException as exc:
        message = str(exc) or type(exc).__name__
        print(f"\nprod-check FAILED while {CURRENT[0]}: {type(exc).__name__}: {message}", file=sys.stderr, flush=True)
        exited = [f"{name} (status {p.returncode})" for name, p in processes.running.items() if p.poll() is not None]
        if exited:
            print(f"already exited before the check stopped them: {', '.join(exited)}", file=sys.stderr, flush=True)
        raise
    finally:
        processes.stop_all()
        if not passed:
            processes.print_logs()
        from django.conf import settings

        if settings.configured:  # prepare() ran: its connection must close before the database can be dropped
            from django.db import connections

            connections.close_all()
        if created:
            subprocess.run(["dropdb", "--if-exists", *server, name], check=False)
        if args.keep_logs or not passed:
            step(f"logs kept in {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    step(f"prod-check passed in {time.monotonic() - STARTED:.1f} s")


def default_database_url() -> str:
    """A database of this checkout's own (fieldsync_prodcheck_<folder>), so checks run at the same time from two
    clones or worktrees never drop each other's database; PROD_CHECK_DATABASE_URL chooses another."""
    checkout = re.sub(r"[^a-z0-9]+", "_", ROOT.name.lower()).strip("_") or "repo"
    return f"postgres://postgres@127.0.0.1:5432/fieldsync_prodcheck_{checkout}"


def read_procfile() -> dict[str, str]:
    """deploy/Procfile's process types and their commands, run from the repository with this virtualenv first on
    PATH (`python`, `gunicorn`), as a platform would run them from the app's directory."""
    lines = (ROOT / "deploy" / "Procfile").read_text().splitlines()
    entries = dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))
    assert set(entries) == {"release", "web", "worker"}, entries
    return entries


def prepare(env: dict, count: int) -> list[dict]:
    """A staff login and two business units, each with an API client scoped to it alone and `count` open invoices
    of its own customers, written with the production settings."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    from django.contrib.auth import get_user_model

    from billing import services
    from billing.models import Invoice, InvoiceLine
    from fieldsync.api.tokens import api_client_create

    logging.getLogger("quickbooks_export").setLevel(logging.WARNING)  # this process's own queries: no JSON lines
    timer = time.monotonic()
    get_user_model().objects.create_superuser("office", "office@example.com", PASSWORD)  # sees every unit
    first = services.business_unit_default()  # "Main": the unit every installation starts with
    second = services.business_unit_create(name="North Store", slug="north-store")
    units = []
    for unit, prefix, company in ((first, "PCM", "Prod Check Main Books"), (second, "PCN", "Prod Check North Books")):
        customers = [
            services.customer_create(
                business_unit=unit,
                display_name=f"{unit.name} Customer {i:03d}",
                email=f"{prefix.lower()}{i}@example.com",
            )
            for i in range(max(1, count // 4))
        ]
        invoices = Invoice.objects.bulk_create(
            [
                Invoice(
                    customer=customer,
                    business_unit_id=customer.business_unit_id,  # bulk_create skips save(): the customer's unit, given
                    number=f"{prefix}-{i:05d}",
                    status=Invoice.Status.OPEN,
                )
                for i, customer in ((i, customers[i % len(customers)]) for i in range(count))
            ]
        )
        InvoiceLine.objects.bulk_create(
            [InvoiceLine(invoice=inv, service_name="Labor", unit_price="120.00", amount="120.00") for inv in invoices]
        )
        _, token = api_client_create(name=f"prod-check-{unit.slug}", business_units=[unit])
        numbers = [invoice.number for invoice in invoices]
        units.append(
            {
                "pk": unit.pk,
                "slug": unit.slug,
                "name": unit.name,
                "company": company,
                "token": token,
                "invoices": numbers,
            }
        )
    assert Invoice.objects.filter(business_unit=first).count() == count, "invoices must take their customer's unit"
    assert Invoice.objects.filter(business_unit=second).count() == count, "invoices must take their customer's unit"
    step(
        f"prepared a staff user and 2 business units ({first.name}, {second.name}), each with an API client scoped "
        f"to it and {count} open invoices, in {time.monotonic() - timer:.1f} s"
    )
    return units


def check_everything(web: str, sandbox: str, units: list[dict], count: int, processes: Processes) -> None:
    doing("waiting for the processes to answer")
    timer = time.monotonic()
    wait_for("the QuickBooks sandbox", lambda: http("GET", f"{sandbox}/")[0] == 200, 60, processes)
    wait_for("gunicorn", lambda: http("GET", f"{web}/health/live")[0] == 200, 60, processes)
    status, headers, body = http("GET", f"{web}/health/live")
    assert json.loads(body) == {"status": "ok"} and len(headers["X-Request-ID"]) == 32, (status, body)
    wait_for(
        "a worker heartbeat (/health/ready 200)", lambda: http("GET", f"{web}/health/ready")[0] == 200, 90, processes
    )
    ready = json.loads(http("GET", f"{web}/health/ready")[2])
    step(
        f"/health/live 200; /health/ready 200 with {ready['workers']['clusters']} clusters, QuickBooks "
        f"{[q['state'] for q in ready['quickbooks']]} ({time.monotonic() - timer:.1f} s)"
    )
    assert ready["workers"]["clusters"] == 2, ready

    doing("checking that an API client cannot reach the other unit's invoice")
    first, second = units
    status, _, body = http(
        "POST",
        f"{web}/api/v1/payments/",
        body={"invoice": second["invoices"][0], "amount": "120.00", "method": "card", "received_on": "2026-11-20"},
        headers={"Authorization": f"Bearer {first['token']}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert status == 400, f"{first['name']}'s client paid {second['name']}'s invoice: {status} {body[:300]!r}"

    # The two units' apps post their payments (4 requests at a time, interleaved) while a person works in Chromium:
    # the payments need no QuickBooks connection, and the wall time of the check is the longer of the two.
    doing("browsing in Chromium while the API clients post payments")
    timer = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=4)
    try:
        futures = [
            (unit, pool.submit(post_payment, web, unit, number))
            for pair in zip(*(unit["invoices"] for unit in units), strict=True)
            for unit, number in zip(units, pair, strict=True)
        ]
        browse(web, sandbox, units)
        doing("posting payments through the API")
        for unit in units:
            unit["payment_ids"] = [future.result() for owner, future in futures if owner is unit]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failed browser stops the posting too
    step(
        f"posted {count} payments in each unit through the API ({2 * count} requests, 4 at a time, each unit's "
        f"with its own client), alongside Chromium, in {time.monotonic() - timer:.1f} s"
    )

    doing("checking that an API client cannot export the other unit's payment")
    status, _, body = http(
        "POST",
        f"{web}/api/v1/exports/",
        body={"payment_ids": [second["payment_ids"][0]]},
        headers={"Authorization": f"Bearer {first['token']}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert status == 400, f"{first['name']}'s client exported {second['name']}'s payment: {status} {body[:300]!r}"
    step("an API client of one unit can neither pay the other unit's invoice nor export its payment (400 both)")

    doing("exporting both units at once")
    timer = time.monotonic()
    for n, unit in enumerate(units, 1):
        request_id = f"prod-check-export-{n:04d}"
        status, headers, body = http(
            "POST",
            f"{web}/api/v1/exports/",
            body={"payment_ids": unit["payment_ids"]},
            headers={
                "Authorization": f"Bearer {unit['token']}",
                "Idempotency-Key": str(uuid.uuid4()),
                "X-Request-ID": request_id,
            },
        )
        assert status == 202 and headers["X-Request-ID"] == request_id, (unit["name"], status, body[:300])
        unit["batch"] = json.loads(body)

    def finished() -> bool:
        for unit in units:
            if unit["batch"]["status"] != "finished":
                answer = http(
                    "GET",
                    f"{web}/api/v1/exports/{unit['batch']['id']}/",
                    headers={"Authorization": f"Bearer {unit['token']}"},
                )
                unit["batch"] = json.loads(answer[2])
        return all(unit["batch"]["status"] == "finished" for unit in units)

    wait_for("both export batches to finish", finished, 150, processes)
    elapsed = time.monotonic() - timer
    for unit in units:
        counts = unit["batch"]["counts"]
        assert counts["created"] == count and counts["failed"] == 0, (unit["name"], counts)
    a, b = (
        (datetime.fromisoformat(unit["batch"]["started_at"]), datetime.fromisoformat(unit["batch"]["finished_at"]))
        for unit in units
    )
    overlap = (min(a[1], b[1]) - max(a[0], b[0])).total_seconds()
    assert overlap > 0, f"the two units' exports did not run at the same time: {a} and {b}"
    calls = calls_by_cluster(processes)
    step(
        f"exported both units in {elapsed:.1f} s, running at the same time for {overlap:.1f} s: "
        + "; ".join(
            f"{unit['name']} {count} created, 0 failed, in {(end - start).total_seconds():.1f} s"
            for unit, (start, end) in zip(units, (a, b), strict=True)
        )
    )

    doing("counting each unit's payments in its own QuickBooks company")
    from billing.models import BusinessUnit
    from quickbooks_export.client import QuickBooksClient
    from quickbooks_export.mappers import payment_marker

    connections = current_connections()
    assert sorted(connections) == sorted(unit["pk"] for unit in units), connections
    realms = [connections[unit["pk"]]["realm_id"] for unit in units]
    assert realms[0] != realms[1], f"both units are connected to the same company: {connections}"
    markers_of = [{payment_marker(pk) for pk in unit["payment_ids"]} for unit in units]
    for unit, own, other, realm in zip(units, markers_of, reversed(markers_of), realms, strict=True):
        client = QuickBooksClient.for_current_connection(business_unit=BusinessUnit.objects.get(pk=unit["pk"]))
        assert client.realm_id == realm, (unit["name"], client.realm_id, realm)
        in_quickbooks = client.query_all("SELECT * FROM Payment")
        # Ours carry FieldSync's marker ("FieldSync payment #id"); a new sandbox company holds one of its own (a
        # hand-keyed, paid INV-1044), which is not ours to count.
        ours = [
            (p.get("PrivateNote") or "").split(" - ")[0]
            for p in in_quickbooks
            if (p.get("PrivateNote") or "").startswith("FieldSync payment #")
        ]
        twice = sorted({marker for marker in ours if ours.count(marker) > 1})
        assert not twice, f"{unit['name']}'s company holds payments twice: {twice[:5]}"
        assert not set(ours) & other, f"{unit['name']}'s company holds the other unit's payments"
        assert set(ours) == own, f"{unit['name']}'s company: {len(own - set(ours))} missing, {len(ours)} in all"
        where = ", ".join(f"{n} from {name}" for name, n in sorted(calls.get(realm, {}).items())) or "no log lines"
        step(
            f"{unit['name']}'s company {connections[unit['pk']]['company_name']!r} holds exactly its {len(ours)} "
            f"payments, each once, none of the other unit's (QuickBooks calls: {where})"
        )

    doing("checking /health/ready and /metrics")
    ready = json.loads(http("GET", f"{web}/health/ready")[2])
    listed = {q["business_unit"]: (q["connection"], q["state"]) for q in ready["quickbooks"]}
    expected = {unit["slug"]: (connections[unit["pk"]]["pk"], "connected") for unit in units}
    assert listed == expected, f"/health/ready lists {ready['quickbooks']}, not both units connected {expected}"
    status, _, body = http("GET", f"{web}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    text = body.decode()
    assert status == 200 and f'fieldsync_payments{{export_status="exported"}} {2 * count}.0' in text, text[:2000]
    total = sum(float(v) for v in re.findall(r"^fieldsync_quickbooks_calls_total\{[^}]*\} (\S+)$", text, re.M))
    assert total > 0, text
    assert http("GET", f"{web}/metrics")[0] == 401
    step(
        f"/health/ready: both units' connections connected; /metrics: {2 * count} exported, {total:.0f} QuickBooks "
        "calls counted; /metrics without the token: 401"
    )


def post_payment(web: str, unit: dict, number: str) -> int:
    status, _, body = http(
        "POST",
        f"{web}/api/v1/payments/",
        body={"invoice": number, "amount": "120.00", "method": "card", "received_on": "2026-11-20"},
        headers={"Authorization": f"Bearer {unit['token']}", "Idempotency-Key": str(uuid.uuid4())},
    )
    if status != 201:
        raise RuntimeError(f"POST /api/v1/payments/ for {unit['name']}'s {number}: {status} {body[:300]!r}")
    return json.loads(body)["id"]


def current_connections() -> dict[int, dict]:
    """Each unit's current QuickBooks connection, by unit id (read from the database the processes share)."""
    from quickbooks_export.models import QuickBooksConnection

    rows = QuickBooksConnection.objects.filter(is_current=True).values(
        "pk", "business_unit_id", "realm_id", "company_name", "state"
    )
    return {row["business_unit_id"]: row for row in rows}


def calls_by_cluster(processes: Processes) -> dict[str, dict[str, int]]:
    """QuickBooks calls per company and per qcluster process, from the workers' JSON logs ("QuickBooks POST
    /v3/company/<realm>/batch -> 200 in 8 ms"): shows which cluster exported what."""
    found: dict[str, dict[str, int]] = {}
    for name in processes.running:
        if name.startswith("qcluster"):
            text = (processes.log_dir / f"{name}.log").read_text(errors="replace")
            for realm in re.findall(r"QuickBooks [A-Z]+ /v3/company/([^/\s]+)/", text):
                found.setdefault(realm, {}).setdefault(name, 0)
                found[realm][name] += 1
    return found


def browse(web: str, sandbox: str, units: list[dict]) -> None:
    from playwright.sync_api import expect, sync_playwright

    timer = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        context = browser.new_context(base_url=web, extra_http_headers={"X-Forwarded-Proto": "https"})
        context.set_default_timeout(30_000)
        page = context.new_page()
        assets: dict[str, int] = {}
        page.on("response", lambda r: assets.__setitem__(r.url, r.status) if "/static/" in r.url else None)

        page.goto("/")
        page.get_by_label("Username").fill("office")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Payments", exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        _check_assets(assets, "the payments page", kinds=("css", "js"))
        step(f"signed in; payments page with {len(assets)} static assets, all hashed, all 200")

        assets.clear()
        response = page.goto("/api/docs/")
        assert response.status == 200, response.status
        expect(page.locator(".swagger-ui").first).to_be_visible()
        page.wait_for_load_state("networkidle")
        _check_assets(assets, "the API docs", kinds=("css", "js"))
        step(f"API docs (Swagger UI) with {len(assets)} static assets, all hashed, all 200")

        page.goto("/")
        switcher = page.locator("#business-unit")
        expect(switcher).to_be_visible()  # two units: the header's unit switcher
        for unit in units:
            switcher.select_option(label=unit["name"])
            page.get_by_role("button", name="Switch").click()
            expect(switcher.locator("option[selected]")).to_have_text(unit["name"])
            page.goto("/quickbooks/")
            page.get_by_role("button", name="Connect to QuickBooks").click()
            page.wait_for_url(f"{sandbox}/**")
            page.locator('input[name="realm_id"][value="new"]').check()  # a company of its own for each unit
            page.locator('input[name="company_name"]').fill(unit["company"])
            page.get_by_role("button", name="Connect", exact=True).click()
            page.wait_for_url(f"{web}/**")
            expect(page.get_by_text(f"Connected to QuickBooks company {unit['company']}.")).to_be_visible()
            page.goto("/quickbooks/")
            expect(page.locator(".badge.ok", has_text="Connected")).to_be_visible()
            expect(page.get_by_text(unit["company"]).first).to_be_visible()
        step(
            f"each unit connected to its own new company through the sandbox's consent page, chosen with the unit "
            f"switcher ({time.monotonic() - timer:.1f} s in Chromium)"
        )
        context.close()
        browser.close()


def _check_assets(assets: dict[str, int], where: str, *, kinds: tuple[str, ...]) -> None:
    failed = {url: status for url, status in assets.items() if status != 200}
    assert not failed, f"{where}: static files not served: {failed}"
    plain = [url for url in assets if not HASHED_ASSET.search(url.split("?", 1)[0])]
    assert not plain, f"{where}: static files without a content hash: {plain}"
    for kind in kinds:
        assert any(url.endswith(f".{kind}") for url in assets), f"{where}: no .{kind} file loaded: {list(assets)}"
    # WhiteNoise serves the precompressed copy to a client that accepts it.
    url = next(u for u in assets if u.endswith(".css"))
    status, headers, _ = http("GET", url, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip", (url, status, headers)
    assert "immutable" in headers.get("Cache-Control", ""), headers


if __name__ == "__main__":
    main()
