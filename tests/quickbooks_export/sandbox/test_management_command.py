"""`manage.py qbo_sandbox` starts a sandbox that the real clients can use, configured from options and env."""

import os
import subprocess
import sys
from pathlib import Path

import requests
from intuitlib.client import AuthClient

MANAGE = Path(__file__).resolve().parents[3] / "manage.py"


def test_qbo_sandbox_command_serves_with_options_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    data_file = tmp_path / "sandbox.json"
    env = {**os.environ, "QBO_SANDBOX_LATENCY_MS": "5", "QBO_SANDBOX_REQUESTS_PER_MINUTE": "77"}
    process = subprocess.Popen(
        [sys.executable, str(MANAGE), "qbo_sandbox", "--port", "0", "--data-file", str(data_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        assert lines[0].startswith("QuickBooks Online sandbox listening on http://127.0.0.1:"), lines
        base_url = lines[0].rsplit(" ", 1)[-1].strip()
        assert "fieldsync-local" in lines[3]
        assert "77 requests/min" in lines[5] and "latency 5 ms" in lines[5]

        client = AuthClient("fieldsync-local", "fieldsync-local-secret", "http://localhost/cb", lines[1].split()[-1])
        created = requests.post(f"{base_url}/_sandbox/companies", json={"name": "Command Co"}, timeout=5)

        assert client.token_endpoint == f"{base_url}/oauth2/v1/tokens/bearer"
        assert created.json()["name"] == "Command Co"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "Command Co" in data_file.read_text()  # written on the way out
