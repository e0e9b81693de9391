"""A local QuickBooks Online: OAuth 2.0 and the accounting API v3 as the real clients see them.

Our "stripe-mock" for QBO. Standard library only (no Django), so tests start it in-process in milliseconds:

    from quickbooks_export.sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(requests_per_minute=5)).start()
    server.discovery_url   # give it to intuit-oauth's AuthClient as `environment`
    server.api_url         # set it as `api_url_v3` on a python-quickbooks QuickBooks client
    server.stop()

`python manage.py qbo_sandbox` runs it for local use; docs/qbo_sandbox.md describes the behaviour.
"""

from .config import ManualClock, SandboxConfig
from .server import Authorization, SandboxServer

__all__ = ["Authorization", "ManualClock", "SandboxConfig", "SandboxServer"]
