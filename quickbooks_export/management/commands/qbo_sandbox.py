"""Run the local QuickBooks Online sandbox: `python manage.py qbo_sandbox --port 8765`.

Every option can also come from the environment (QBO_SANDBOX_PORT, QBO_SANDBOX_HOST, QBO_SANDBOX_DATA_FILE,
QBO_SANDBOX_LATENCY_MS, ...); a command-line option wins. Companies and tokens are kept in var/qbo_sandbox.json
unless --data-file says otherwise (an empty value keeps everything in memory).
"""

import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from quickbooks_export.sandbox import SandboxConfig, SandboxServer
from quickbooks_export.sandbox.profiles import DEFAULT_PROFILE, PROFILES

DEFAULTS = SandboxConfig()
# option name -> (environment variable, type, default)
INT_OPTIONS = {
    "port": ("QBO_SANDBOX_PORT", 8765),
    "latency_ms": ("QBO_SANDBOX_LATENCY_MS", DEFAULTS.latency_ms),
    "requests_per_minute": ("QBO_SANDBOX_REQUESTS_PER_MINUTE", DEFAULTS.requests_per_minute),
    "max_in_flight": ("QBO_SANDBOX_MAX_IN_FLIGHT", DEFAULTS.max_in_flight),
    "batch_per_minute": ("QBO_SANDBOX_BATCH_PER_MINUTE", DEFAULTS.batch_per_minute),
    "access_token_ttl": ("QBO_SANDBOX_ACCESS_TOKEN_TTL", DEFAULTS.access_token_ttl),
}
STR_OPTIONS = {
    "host": ("QBO_SANDBOX_HOST", "127.0.0.1"),
    "client_id": ("QBO_SANDBOX_CLIENT_ID", DEFAULTS.client_id),
    "client_secret": ("QBO_SANDBOX_CLIENT_SECRET", DEFAULTS.client_secret),
}


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # stop like Ctrl-C, so the data file gets its last write


def _env_int(variable: str, default: int) -> int:
    value = os.environ.get(variable)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"{variable} must be a whole number, not {value!r}") from None


class Command(BaseCommand):
    help = "Run a local QuickBooks Online sandbox (OAuth 2.0 + accounting API v3) for development and demos."

    def add_arguments(self, parser):
        for name, (variable, default) in STR_OPTIONS.items():
            parser.add_argument(f"--{name.replace('_', '-')}", default=None, help=f"env {variable}; default {default}")
        parser.add_argument(
            "--data-file",
            default=None,
            help="env QBO_SANDBOX_DATA_FILE; default VAR_DIR/qbo_sandbox.json; empty: in memory only",
        )
        for name, (variable, default) in INT_OPTIONS.items():
            parser.add_argument(
                f"--{name.replace('_', '-')}", type=int, default=None, help=f"env {variable}; default {default}"
            )
        parser.add_argument(
            "--company-profile",
            choices=list(PROFILES),
            default=None,
            help=f"env QBO_SANDBOX_COMPANY_PROFILE; the kind of company new companies are; default {DEFAULT_PROFILE}",
        )
        parser.add_argument(
            "--company-seed",
            choices=["none", "collisions"],
            default=None,
            help="env QBO_SANDBOX_COMPANY_SEED; 'collisions' starts new companies with QuickBooks data that collides "
            "with FieldSync's demo; default collisions",
        )

    def handle(self, *args, **options):
        values = {}
        for name, (variable, default) in INT_OPTIONS.items():
            values[name] = options[name] if options[name] is not None else _env_int(variable, default)
        for name, (variable, default) in STR_OPTIONS.items():
            values[name] = options[name] if options[name] is not None else os.environ.get(variable, default)
        profile = options["company_profile"] or os.environ.get("QBO_SANDBOX_COMPANY_PROFILE") or DEFAULT_PROFILE
        if profile not in PROFILES:
            raise CommandError(f"QBO_SANDBOX_COMPANY_PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}")
        # `make run` (run_local) starts this command without options: its companies start with the collisions,
        # so the demo meets the awkward QuickBooks data a real office has.
        seed = options["company_seed"] or os.environ.get("QBO_SANDBOX_COMPANY_SEED") or "collisions"
        if seed not in ("none", "collisions"):
            raise CommandError(f"QBO_SANDBOX_COMPANY_SEED must be none or collisions, not {seed!r}")
        data_file = options["data_file"]
        if data_file is None:
            data_file = os.environ.get("QBO_SANDBOX_DATA_FILE", str(settings.VAR_DIR / "qbo_sandbox.json"))
        config = SandboxConfig(
            client_id=values["client_id"],
            client_secret=values["client_secret"],
            access_token_ttl=values["access_token_ttl"],
            requests_per_minute=values["requests_per_minute"],
            max_in_flight=values["max_in_flight"],
            batch_per_minute=values["batch_per_minute"],
            latency_ms=values["latency_ms"],
            data_file=data_file or None,
            company_profile=profile,
            company_seed=None if seed == "none" else seed,
        )
        try:
            server = SandboxServer(config, host=values["host"], port=values["port"])
        except OSError as error:
            raise CommandError(f"cannot listen on {values['host']}:{values['port']}: {error}") from None
        write = self.stdout.write
        write(f"QuickBooks Online sandbox listening on {server.base_url}")
        write(f"  discovery document  {server.discovery_url}")
        write(f"  API base (api_url_v3)  {server.api_url}")
        write(f"  client id  {config.client_id}   client secret  {config.client_secret}")
        write(f"  data file  {config.data_file or '(in memory)'}")
        write(
            f"  limits  {config.requests_per_minute} requests/min, {config.max_in_flight} in flight, "
            f"{config.batch_per_minute} batches/min, latency {config.latency_ms} ms"
        )
        write(f"  new companies  {profile} ({PROFILES[profile].description}), seed {seed}")
        write("  fault injection and inspection under /_sandbox/ (no authentication: keep it on 127.0.0.1)")
        self.stdout.flush()
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            write("stopped")
