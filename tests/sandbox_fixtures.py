"""pytest fixtures that start the local QuickBooks Online sandbox (quickbooks_export.sandbox) in-process.

Enabled for the whole suite by `pytest_plugins = ["tests.sandbox_fixtures"]` in tests/conftest.py.
"""

import pytest

from quickbooks_export.sandbox import SandboxConfig, SandboxServer


@pytest.fixture
def qbo_sandbox_factory(monkeypatch):
    """Start sandboxes with config overrides: `qbo_sandbox_factory(requests_per_minute=3, clock=ManualClock())`,
    `qbo_sandbox_factory(company_profile="uk", company_seed="collisions")`.

    Each is on a free port and stopped after the test. intuit-oauth and requests-oauthlib refuse plain http
    unless OAUTHLIB_INSECURE_TRANSPORT is set, so it is set for the test (local sandbox only).
    """
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    started: list[SandboxServer] = []

    def start(*, clock=None, **config_overrides) -> SandboxServer:
        """`company_profile="ca"` / `company_seed="collisions"` choose what companies created through the
        consent flow (authorize() without realm_id, the page, POST /_sandbox/companies) are."""
        server = SandboxServer(SandboxConfig(**config_overrides), clock=clock).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def qbo_sandbox(qbo_sandbox_factory) -> SandboxServer:
    """A started sandbox with the default (QuickBooks production-like) configuration."""
    return qbo_sandbox_factory()


@pytest.fixture(params=["us-ast", "us-manual-tax", "ca", "uk", "au"])
def qbo_sandbox_profile(request, qbo_sandbox_factory) -> SandboxServer:
    """A started sandbox whose new companies are of each profile in turn (tests using it run once per profile);
    `qbo_sandbox_profile.config.company_profile` says which."""
    return qbo_sandbox_factory(company_profile=request.param)
