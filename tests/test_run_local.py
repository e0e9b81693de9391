"""`make run` (manage.py run_local) shows office staff FieldSync's own pages, never Django's yellow debug pages, and
still serves the stylesheet: its web server started exactly as run_local starts it, on a free port."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from fieldsync.management.commands.run_local import local_environment, web_command

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_when_up(url: str, server: subprocess.Popen) -> requests.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the web server exited"
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("the web server did not start")


def test_the_local_product_shows_the_branded_404_and_serves_its_stylesheet(tmp_path):
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    environ |= {"DJANGO_SETTINGS_MODULE": "fieldsync.settings.base", "DATABASE_URL": f"sqlite:///{tmp_path}/db"}
    command = web_command([sys.executable, str(ROOT / "manage.py")], f"127.0.0.1:{port}")
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own manage.py
        command, cwd=ROOT, env=local_environment(environ), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        missing = _get_when_up(f"http://127.0.0.1:{port}/no-such-page/", server)
        stylesheet = requests.get(f"http://127.0.0.1:{port}/static/fieldsync/app.css", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=20)

    assert missing.status_code == 404
    assert "Page not found" in missing.text
    assert "Using the URLconf defined in" not in missing.text  # Django's debug 404
    assert stylesheet.status_code == 200 and ".nav" in stylesheet.text


def test_a_developer_can_still_ask_for_debug_pages():
    assert local_environment({})["DJANGO_DEBUG"] == "false"
    assert local_environment({"DJANGO_DEBUG": "true"})["DJANGO_DEBUG"] == "true"
