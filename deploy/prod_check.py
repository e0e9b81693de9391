"""`make prod-check`: FieldSync as production runs it, end to end on this machine, then everything stopped.

    .venv/bin/python deploy/prod_check.py [--payments 100] [--keep-logs]

1. A fresh PostgreSQL database (fieldsync_prodcheck on 127.0.0.1:5432 unless PROD_CHECK_DATABASE_URL says otherwise).
2. Production settings (fieldsync.settings.production) from dummy, production-shaped environment values; QuickBooks is
   the local sandbox through the one documented escape hatch, FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS (every QuickBooks
   URL on this machine; the checks report it as fieldsync.W001, so no `check --deploy --fail-level WARNING` passes
   with it). Static files collected (hashed, compressed) into a temporary STATIC_ROOT.
3. deploy/Procfile's commands: `release` (migrate, collectstatic), `web` (gunicorn, 2 workers, gunicorn.conf.py) and
   `worker` twice (two qcluster processes sharing the PostgreSQL (ORM) broker); the local QuickBooks sandbox; ports
   chosen free now; JSON logs.
4. /health/live and /health/ready (a worker heartbeat) answer; headless Chromium (Debian's /usr/bin/chromium, never a
   downloaded browser) signs in, loads the payments page and asserts every static asset is a hashed file served with
   200 (and compressed on request), loads the API docs, and connects QuickBooks through the sandbox's consent page.
5. --payments payments posted through the REST API (one invoice each, created in the database), exported through the
   API, the batch followed to the end; QuickBooks' side counted with a query; /health/ready shows the company
   connected and /metrics counts the exported payments and the QuickBooks calls.
6. Everything stopped (also on failure or Ctrl-C). Prints each step with its time; exit status 0 only if all passed.

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
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("FIELDSYNC_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "prod-check-only-" + uuid.uuid4().hex[:12]
METRICS_TOKEN = "prod-check-metrics-" + uuid.uuid4().hex
HASHED_ASSET = re.compile(r"/static/.+\.[0-9a-f]{12}\.(css|js|svg|png|ico|woff2?)$")
STARTED = time.monotonic()


def step(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


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
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (their folder is printed)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: apt-get install chromium")

    work = Path(tempfile.mkdtemp(prefix="fieldsync-prod-check-"))
    database_url = os.environ.get("PROD_CHECK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fieldsync_prodcheck")
    name = database_url.rsplit("/", 1)[1]
    subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
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

    procfile = read_procfile()
    timer = time.monotonic()
    output = run(["sh", "-c", procfile["release"]], env)
    assert "fieldsync.W001" in output, "the escape hatch must announce itself"
    copied = re.search(r"(\d+) static files? copied", output)
    step(
        f"Procfile release (migrate, collectstatic: {copied.group(0) if copied else '?'}) in "
        f"{time.monotonic() - timer:.1f} s; production settings reported fieldsync.W001 as they must"
    )

    prepared = prepare(env, args.payments)
    processes = Processes(work)
    try:
        processes.start(
            "quickbooks-sandbox",
            [*manage, "qbo_sandbox", "--port", str(sandbox_port), "--data-file", ""],
            {**env, "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base"},  # the stand-in for Intuit, not FieldSync
        )
        # The Procfile's own web and worker commands, with the environment a platform would give them.
        web_env = {**env, "PORT": str(web_port), "BIND_ADDRESS": "127.0.0.1", "WEB_CONCURRENCY": "2"}
        processes.start("gunicorn", ["sh", "-c", procfile["web"]], web_env)
        for n in (1, 2):
            processes.start(f"qcluster-{n}", ["sh", "-c", procfile["worker"]], env)
        check_everything(web, sandbox, env, prepared, args.payments, processes)
    finally:
        processes.stop_all()
        from django.db import connections

        connections.close_all()
        subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", name], check=False)
        if args.keep_logs:
            step(f"logs kept in {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    step("prod-check passed")


def read_procfile() -> dict[str, str]:
    """deploy/Procfile's process types and their commands, run from the repository with this virtualenv first on
    PATH (`python`, `gunicorn`), as a platform would run them from the app's directory."""
    lines = (ROOT / "deploy" / "Procfile").read_text().splitlines()
    entries = dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))
    assert set(entries) == {"release", "web", "worker"}, entries
    return entries


def prepare(env: dict, count: int) -> dict:
    """A staff login, an API client and `count` open invoices, written with the production settings."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from billing import services
    from billing.models import Invoice, InvoiceLine
    from fieldsync.api.tokens import api_client_create

    timer = time.monotonic()
    get_user_model().objects.create_superuser("office", "office@example.com", PASSWORD)
    customers = [
        services.customer_create(display_name=f"Prod Check Customer {i:03d}", email=f"c{i}@example.com")
        for i in range(max(1, count // 4))
    ]
    invoices = Invoice.objects.bulk_create(
        [
            Invoice(
                customer=customer,
                business_unit_id=customer.business_unit_id,  # bulk_create skips save(): the customer's unit, given
                number=f"PC-{i:05d}",
                status=Invoice.Status.OPEN,
            )
            for i, customer in ((i, customers[i % len(customers)]) for i in range(count))
        ]
    )
    InvoiceLine.objects.bulk_create(
        [InvoiceLine(invoice=inv, service_name="Labor", unit_price="120.00", amount="120.00") for inv in invoices]
    )
    _, token = api_client_create(name="prod-check")
    step(f"prepared a staff user, an API client and {count} open invoices in {time.monotonic() - timer:.1f} s")
    return {"token": token, "invoices": [inv.number for inv in invoices]}


def check_everything(web: str, sandbox: str, env: dict, prepared: dict, count: int, processes: Processes) -> None:
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

    browse(web, sandbox)

    timer = time.monotonic()
    api = {"Authorization": f"Bearer {prepared['token']}"}
    payment_ids = []
    for number in prepared["invoices"]:
        status, _, body = http(
            "POST",
            f"{web}/api/v1/payments/",
            body={"invoice": number, "amount": "120.00", "method": "card", "received_on": "2026-11-20"},
            headers={**api, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert status == 201, (status, body)
        payment_ids.append(json.loads(body)["id"])
    step(f"posted {count} payments through the API in {time.monotonic() - timer:.1f} s")

    timer = time.monotonic()
    status, headers, body = http(
        "POST",
        f"{web}/api/v1/exports/",
        body={"payment_ids": payment_ids},
        headers={**api, "Idempotency-Key": str(uuid.uuid4()), "X-Request-ID": "prod-check-export-0001"},
    )
    assert status == 202 and headers["X-Request-ID"] == "prod-check-export-0001", (status, body)
    batch_id = json.loads(body)["id"]
    batch: dict = {}

    def finished() -> bool:
        nonlocal batch
        batch = json.loads(http("GET", f"{web}/api/v1/exports/{batch_id}/", headers=api)[2])
        return batch["status"] == "finished"

    wait_for("the export batch to finish", finished, 150, processes)
    counts = batch["counts"]
    step(f"exported through 2 qcluster processes in {time.monotonic() - timer:.1f} s: {counts}")
    assert counts["created"] == count and counts["failed"] == 0, counts

    from quickbooks_export.client import QuickBooksClient

    in_quickbooks = QuickBooksClient.for_current_connection().query_all("SELECT * FROM Payment")
    # Ours carry FieldSync's marker ("FieldSync payment #id"); the sandbox's seeded company holds one of its own
    # (a hand-keyed, paid INV-1044), which is not ours to count.
    ours = [p for p in in_quickbooks if (p.get("PrivateNote") or "").startswith("FieldSync payment #")]
    markers = {p["PrivateNote"].split(" - ")[0] for p in ours}
    assert len(ours) == count and len(markers) == count, (len(in_quickbooks), len(ours), len(markers))
    step(f"QuickBooks (the sandbox, queried over its API) holds {len(ours)} of our payments, each once")

    ready = json.loads(http("GET", f"{web}/health/ready")[2])
    assert [q["state"] for q in ready["quickbooks"]] == ["connected"], ready
    status, _, body = http("GET", f"{web}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    text = body.decode()
    assert status == 200 and f'fieldsync_payments{{export_status="exported"}} {count}.0' in text, text[:2000]
    calls = sum(float(v) for v in re.findall(r"^fieldsync_quickbooks_calls_total\{[^}]*\} (\S+)$", text, re.M))
    assert calls > 0, text
    assert http("GET", f"{web}/metrics")[0] == 401
    step(
        f"/health/ready: QuickBooks connected; /metrics: {count} exported, {calls:.0f} QuickBooks calls counted; "
        "/metrics without the token: 401"
    )


def browse(web: str, sandbox: str) -> None:
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

        page.goto("/quickbooks/")
        page.get_by_role("button", name="Connect to QuickBooks").click()
        page.wait_for_url(f"{sandbox}/**")
        page.get_by_role("button", name="Connect").click()
        page.wait_for_url(f"{web}/**")
        page.goto("/quickbooks/")
        expect(page.locator(".badge.ok", has_text="Connected")).to_be_visible()
        step(f"QuickBooks connected through the sandbox's consent page ({time.monotonic() - timer:.1f} s in Chromium)")
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
