"""A local QuickBooks Desktop + Web Connector, for tests, the benchmark and `manage.py qbwc_simulator`."""

from .company import DesktopCompany, ParseFailure
from .webconnector import DjangoClientTransport, HttpTransport, WebConnectorSimulator, run_interleaved

__all__ = [
    "DesktopCompany",
    "DjangoClientTransport",
    "HttpTransport",
    "ParseFailure",
    "WebConnectorSimulator",
    "run_interleaved",
]
