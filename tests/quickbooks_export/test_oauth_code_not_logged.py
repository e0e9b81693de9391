"""The single-use OAuth `code` (and our `state`) never reach a log (issue 11, item 8): not runserver's request lines
(what `make run` shows), not gunicorn's access log, not Django's loggers. Real servers on free ports, real requests."""

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent
CODE = "AB11secretcode0042"
STATE = "st8secretstate0042"
CALLBACK = f"/quickbooks/callback/?code={CODE}&state={STATE}&realmId=9130350000000001"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not start")


def _serve_and_visit_callback(command: list[str], port: int, tmp_path: Path) -> str:
    """Start the server, visit the callback signed out (it redirects to the login page with the callback URL in
    `next`, which is requested and logged too), stop it; return everything it logged."""
    log = tmp_path / "server.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            _wait_until_up(port, server)
            response = requests.get(f"http://127.0.0.1:{port}{CALLBACK}", timeout=10)
            assert response.status_code == 200 and "/accounts/login/" in response.url  # really went through both
            time.sleep(0.5)  # let the last log line be written
        finally:
            server.terminate()
            server.wait(timeout=20)
    return log.read_text()


def test_runserver_request_lines_do_not_log_the_oauth_code(tmp_path):
    port = _free_port()
    logged = _serve_and_visit_callback(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"], port, tmp_path
    )

    assert "/quickbooks/callback/" in logged and "/accounts/login/" in logged  # the requests were logged
    assert CODE not in logged and STATE not in logged, logged
    assert "[redacted]" in logged


def test_gunicorn_access_log_does_not_log_the_oauth_code(tmp_path):
    port = _free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "fieldsync.wsgi:application", "--bind", f"127.0.0.1:{port}", "--access-logfile", "-"]

    logged = _serve_and_visit_callback(command, port, tmp_path)

    assert '"GET /quickbooks/callback/ HTTP/1.1" 302' in logged, logged
    assert CODE not in logged and STATE not in logged, logged


@pytest.mark.parametrize("logger_name", ["django.request", "django.server", "fieldsync", "quickbooks_export"])
def test_every_log_handler_redacts_oauth_codes(logger_name):
    """Whatever logs a URL with a code in it (a 4xx warning, an error), the configured handlers redact it."""
    import io

    logger = logging.getLogger(logger_name)
    handlers = [h for h in (logger.handlers or logging.getLogger().handlers) if isinstance(h, logging.StreamHandler)]
    assert handlers
    stream = io.StringIO()
    old = [h.setStream(stream) for h in handlers]
    try:
        logger.warning("Bad request: %s", f"GET {CALLBACK}")
        logger.warning(
            "next=%s", "/accounts/login/?next=/quickbooks/callback/%3Fcode%3D" + CODE + "%26state%3D" + STATE
        )
    finally:
        for handler, previous in zip(handlers, old, strict=True):
            handler.setStream(previous)

    written = stream.getvalue()
    assert "Bad request" in written and CODE not in written and STATE not in written, written
