"""Start the whole product for local use: the web server, a background worker and (unless QuickBooks is
configured elsewhere) the local QuickBooks sandbox. Ctrl-C stops all three; if one dies, the others are stopped."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def local_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment of the local product: what office staff see (branded 404/500 pages, no debug pages), unless
    a developer asks for Django's debug pages with DJANGO_DEBUG=true."""
    return {**environ, "DJANGO_DEBUG": environ.get("DJANGO_DEBUG", "false")}


def web_command(manage: list[str], addr: str) -> list[str]:
    # --insecure: with DEBUG off, runserver serves the static files only when asked to (local use only; production
    # serves them with WhiteNoise, see docs/production.md).
    return [*manage, "runserver", addr, "--noreload", "--insecure"]


class Command(BaseCommand):
    help = "Run web + worker + local QuickBooks sandbox together (what `make run` starts)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where the web server listens")
        parser.add_argument("--sandbox-port", type=int, default=8765)

    def handle(self, *args, addr: str, sandbox_port: int, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {"web": web_command(manage, addr), "worker": [*manage, "qcluster"]}
        environment = local_environment(dict(os.environ))
        if settings.QBO_ENVIRONMENT == "local":
            commands = {"quickbooks-sandbox": [*manage, "qbo_sandbox", "--port", str(sandbox_port)], **commands}
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, command in commands.items():
            children[name] = subprocess.Popen(command, env=environment)  # noqa: S603 - our own manage.py, no shell
            self.stdout.write(f"started {name} (pid {children[name].pid})")
        host = addr if ":" in addr else f"127.0.0.1:{addr}"
        self.stdout.write(self.style.SUCCESS(f"FieldSync is running on http://{host}/ — Ctrl-C stops it."))
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping the others.")
                    exit_code, stopping = child.returncode or 1, True
                    break
            time.sleep(0.5)
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(exit_code)
