"""A QuickBooks Web Connector, simulated: it calls our SOAP endpoint in the order and with the parameters the real
one uses (Intuit, "QuickBooks Web Connector Programmer's Guide" 2.0: serverVersion, clientVersion, authenticate,
then sendRequestXML / receiveResponseXML until 100 % or an error, getLastError on "" or a negative percentage —
"NoOp" meaning "wait and ask again" — connectionError when QuickBooks cannot be opened, and closeConnection), and
hands each qbXML message set to an in-memory company file (company.py).

Failure modes for tests and demos: drop the answer to chosen message sets after QuickBooks applied them (the Web
Connector reports an hresult instead), kill the session after the n-th message set (before or after QuickBooks applied
it; nothing more is called), fail to open the company file (connectionError), and run several sessions at once
(run_interleaved alternates their calls one by one).
"""

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from quickbooks_desktop import soap

from .company import PARSE_ERROR, DesktopCompany, ParseFailure

CLIENT_VERSION = "2.3.0.215"
LOST_RESPONSE = ("0x80040422", "The response from QuickBooks was lost (simulated).")
HCP_RESPONSE = '<?xml version="1.0" ?><QBXML><QBXMLMsgsRs><HostQueryRs statusCode="0"/></QBXMLMsgsRs></QBXML>'


class HttpTransport:
    """POSTs SOAP 1.1 to a URL, as the Web Connector does."""

    def __init__(self, url: str, *, timeout: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"The Web Connector talks to http(s) addresses only, not {url!r}.")
        self.url, self.timeout = url, timeout

    def __call__(self, operation: str, body: bytes) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{soap.QBWC_NS}{operation}"'},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 500:  # a SOAP fault comes with HTTP 500
                return exc.read()
            raise ConnectionError(f"HTTP {exc.code} from {self.url}") from None


class DjangoClientTransport:
    """The same calls through Django's test client (the full middleware and URL stack, no socket)."""

    def __init__(self, client, path: str):
        self.client, self.path = client, path

    def __call__(self, operation: str, body: bytes) -> bytes:
        response = self.client.generic(
            "POST",
            self.path,
            data=body,
            content_type="text/xml; charset=utf-8",
            HTTP_SOAPACTION=f'"{soap.QBWC_NS}{operation}"',
        )
        return response.content


@dataclass
class SessionReport:
    ticket: str = ""
    auth_code: str = ""
    message_sets: int = 0
    requests: int = 0
    dropped: int = 0
    noops: int = 0
    killed: bool = False
    percents: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closed: str = ""
    qb_seconds: float = 0.0  # simulated time QuickBooks spent answering


class WebConnectorSimulator:
    def __init__(
        self,
        transport: Callable[[str, bytes], bytes],
        *,
        username: str,
        password: str,
        company: DesktopCompany,
        company_file: str = r"C:\Users\Public\Documents\Intuit\QuickBooks\Company Files\Sample.qbw",
        seconds_per_request: float = 0.0,
        real_sleep: bool = False,
        drop_responses: Iterable[int] = (),
        kill_after: int | None = None,
        kill_before_apply: bool = False,
        fail_to_open: bool = False,
        noop_wait: float = 0.0,
        max_noops: int = 100,
    ):
        self.transport, self.username, self.password, self.company = transport, username, password, company
        self.company_file = company_file
        self.seconds_per_request, self.real_sleep = seconds_per_request, real_sleep
        self.drop_responses, self.kill_after, self.kill_before_apply = (
            set(drop_responses),
            kill_after,
            kill_before_apply,
        )
        self.fail_to_open, self.noop_wait, self.max_noops = fail_to_open, noop_wait, max_noops
        self.report = SessionReport()

    def call(self, operation: str, **parameters):
        return soap.parse_result(operation, self.transport(operation, soap.build_call(operation, **parameters)))

    def run(self) -> SessionReport:
        for _ in self.steps():
            pass
        return self.report

    def steps(self):
        """One SOAP call per step (a generator), so sessions can be interleaved."""
        report = self.report
        self.call("serverVersion")
        yield
        self.call("clientVersion", strVersion=CLIENT_VERSION)
        yield
        answer = self.call("authenticate", strUserName=self.username, strPassword=self.password)
        report.ticket, report.auth_code = answer[0], answer[1] if len(answer) > 1 else ""
        yield
        if report.auth_code == "nvu":
            report.errors.append("invalid user")
            return
        ticket = report.ticket
        if report.auth_code == "none":
            report.closed = self.call("closeConnection", ticket=ticket)
            return
        if self.fail_to_open:
            self.call("connectionError", ticket=ticket, hresult="0x80040408", message="Could not start QuickBooks.")
            return
        first = True
        while True:
            qbxml = self.call(
                "sendRequestXML",
                ticket=ticket,
                strHCPResponse=HCP_RESPONSE if first else "",
                strCompanyFileName=self.company_file,
                qbXMLCountry="US",
                qbXMLMajorVers=13,
                qbXMLMinorVers=0,
            )
            first = False
            yield
            if qbxml == "":
                error = self.call("getLastError", ticket=ticket)
                yield
                if error == "NoOp" and report.noops < self.max_noops:
                    report.noops += 1
                    if self.noop_wait:
                        time.sleep(self.noop_wait)
                    continue
                if error != "NoOp":
                    report.errors.append(error)
                report.closed = self.call("closeConnection", ticket=ticket)
                return
            report.message_sets += 1
            n = report.message_sets
            if self.kill_after == n and self.kill_before_apply:
                report.killed = True
                return
            try:
                response, hresult, message = self.company.process(qbxml), "", ""
                report.requests += qbxml.count("requestID=")
                report.qb_seconds += self.seconds_per_request * qbxml.count("requestID=")
                if self.real_sleep and self.seconds_per_request:
                    time.sleep(self.seconds_per_request * qbxml.count("requestID="))
            except ParseFailure as exc:
                response, (hresult, message) = "", PARSE_ERROR
                report.errors.append(f"parse error: {exc}")
            if self.kill_after == n:
                report.killed = True  # QuickBooks applied it; the Web Connector never reports back
                return
            if n in self.drop_responses:
                report.dropped += 1
                response, (hresult, message) = "", LOST_RESPONSE
            percent = self.call(
                "receiveResponseXML", ticket=ticket, response=response, hresult=hresult, message=message
            )
            report.percents.append(percent)
            yield
            if percent < 0:
                report.errors.append(self.call("getLastError", ticket=ticket))
                report.closed = self.call("closeConnection", ticket=ticket)
                return
            if percent >= 100:
                report.closed = self.call("closeConnection", ticket=ticket)
                return


def run_interleaved(*simulators: WebConnectorSimulator) -> list[SessionReport]:
    """Run sessions "at once": one SOAP call of each in turn, as two Web Connectors would."""
    running = [sim.steps() for sim in simulators]
    while running:
        for steps in list(running):
            try:
                next(steps)
            except StopIteration:
                running.remove(steps)
    return [sim.report for sim in simulators]
