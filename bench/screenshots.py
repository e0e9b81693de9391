"""Screenshots of the staff pages into docs/screenshots/, taken by the browser tests in a real Chromium.

    .venv/bin/python bench/screenshots.py            # writes docs/screenshots/*.png

The office flow (desktop, 1360 px) pictures the demo story company after a real export to the local QuickBooks
sandbox: the Payments list (filtered), a finished batch, its failed records, the export log, a payment's page and
Needs manual handling. The record flow and the every-page check picture each page at phone width (390×844,
`*-phone.png`) and desktop width (1366×900, `*-desktop.png`): customers, a customer, the invoice form with a
mistake refused, a held deposit, the exported payment, invoices, the payment form, and the export pages; and the
QuickBooks Desktop page after a simulated Web Connector run.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    env = {**os.environ, "FIELDSYNC_SCREENSHOTS": str(target.resolve())}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/browser/test_staff_flow.py::test_the_office_flow",
        "tests/browser/test_records_flow.py",
        "tests/browser/test_quickbooks_desktop.py",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    for picture in sorted(target.glob("*.png")):
        print(picture.relative_to(ROOT) if picture.is_relative_to(ROOT) else picture)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
