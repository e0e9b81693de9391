"""What the benchmarks share: the project root on sys.path (they run as plain scripts), a free local port, and the
local QuickBooks sandbox run as its own process with companies connected through the real OAuth flow."""

import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sandbox_environ(base: str) -> dict[str, str]:
    """The settings (as environment variables) that point FieldSync, and any worker it starts, at the sandbox at
    `base`, with the export runner allowed to run for the whole benchmark."""
    return {
        "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
        "QBO_ENVIRONMENT": "local",
        "QBO_SANDBOX_URL": base,
        "QBO_DISCOVERY_URL": f"{base}/.well-known/openid_configuration",
        "QBO_API_BASE_URL": base,
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
        "FIELDSYNC_LOG_LEVEL": "WARNING",
        "EXPORT_RUN_SECONDS": "3600",
    }


def sandbox_start(*, port: int, latency_ms: int, data_file: Path) -> subprocess.Popen:
    """`manage.py qbo_sandbox` as its own process, with QuickBooks' real per-company limits and `latency_ms` added to
    every API answer; returns once it answers."""
    import requests

    process = subprocess.Popen(  # noqa: S603 - our own manage.py
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "qbo_sandbox",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--data-file",
            str(data_file),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # a loaded machine takes a while to start Django
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/.well-known/openid_configuration", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the sandbox did not answer on port {port}")


def sandbox_connect(base: str, *, company_name: str, business_unit=None) -> str:
    """Connect a new sandbox company to `business_unit` (default: the only one) through the real OAuth flow, as a
    person approving on the sandbox's consent page would; returns its realm id. Needs django.setup()."""
    import requests
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from quickbooks_export.connection import connection_complete_authorization, connection_start_authorization

    request = RequestFactory().get("/")
    request.session = SessionStore()
    url = connection_start_authorization(request=request, business_unit=business_unit)
    state = parse_qs(urlsplit(url).query)["state"][0]
    approve = requests.post(
        f"{base}/_sandbox/authorize",
        json={"redirect_uri": settings.QBO_REDIRECT_URI, "state": state, "company_name": company_name},
        timeout=10,
    ).json()
    connection = connection_complete_authorization(
        request=request, code=approve["code"], state=state, realm_id=approve["realm_id"], user=None
    )
    return connection.realm_id


def sandbox_company(base: str, realm_id: str) -> dict:
    """The sandbox's view of a company: its `stats` (requests, reads, writes, batches, throttled) and `entities`."""
    import requests

    return requests.get(f"{base}/_sandbox/companies/{realm_id}", timeout=30).json()
