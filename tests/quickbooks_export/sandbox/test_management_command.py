"""`manage.py qbo_sandbox` starts a sandbox that the real clients can use, configured from options and env."""

import os
import subprocess
import sys
from pathlib import Path

import requests
from intuitlib.client import AuthClient

MANAGE = Path(__file__).resolve().parents[3] / "manage.py"


def _start(*arguments: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(MANAGE), "qbo_sandbox", "--port", "0", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


def test_qbo_sandbox_command_serves_with_options_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    data_file = tmp_path / "sandbox.json"
    env = {"QBO_SANDBOX_LATENCY_MS": "5", "QBO_SANDBOX_REQUESTS_PER_MINUTE": "77"}
    process = _start("--data-file", str(data_file), "--company-profile", "uk", "--company-seed", "none", env=env)
    try:
        lines = [process.stdout.readline() for _ in range(7)]
        assert lines[0].startswith("QuickBooks Online sandbox listening on http://127.0.0.1:"), lines
        base_url = lines[0].rsplit(" ", 1)[-1].strip()
        assert "fieldsync-local" in lines[3]
        assert "77 requests/min" in lines[5] and "latency 5 ms" in lines[5]
        assert "new companies  uk" in lines[6] and "seed none" in lines[6]

        client = AuthClient("fieldsync-local", "fieldsync-local-secret", "http://localhost/cb", lines[1].split()[-1])
        created = requests.post(f"{base_url}/_sandbox/companies", json={"name": "Command Co"}, timeout=5)
        company = requests.get(f"{base_url}/_sandbox/companies/{created.json()['realm_id']}", timeout=5).json()

        assert client.token_endpoint == f"{base_url}/oauth2/v1/tokens/bearer"
        assert created.json()["name"] == "Command Co"
        assert company["profile"] == "uk" and company["entities"]["Customer"] == []
    finally:
        _stop(process)
    assert "Command Co" in data_file.read_text()  # written on the way out


def test_qbo_sandbox_command_defaults_to_us_ast_companies_seeded_with_collisions():
    # run_local (`make run`) starts the command with no profile options: the demo meets colliding data.
    process = _start("--data-file", "", env={"QBO_SANDBOX_COMPANY_PROFILE": "", "QBO_SANDBOX_COMPANY_SEED": ""})
    try:
        lines = [process.stdout.readline() for _ in range(7)]
        base_url = lines[0].rsplit(" ", 1)[-1].strip()
        created = requests.post(f"{base_url}/_sandbox/companies", json={"name": "Default Co"}, timeout=5).json()
        company = requests.get(f"{base_url}/_sandbox/companies/{created['realm_id']}", timeout=5).json()

        assert "new companies  us-ast" in lines[6] and "seed collisions" in lines[6]
        assert created["profile"] == "us-ast"
        assert "Lakeview Property Management" in {c["DisplayName"] for c in company["entities"]["Customer"]}
    finally:
        _stop(process)


def test_qbo_sandbox_command_refuses_an_unknown_profile():
    result = subprocess.run(
        [sys.executable, str(MANAGE), "qbo_sandbox", "--port", "0", "--company-profile", "fr"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "invalid choice: 'fr'" in result.stderr and "us-manual-tax" in result.stderr
