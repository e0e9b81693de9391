"""The sandbox's HTTP side: one standard-library server, routing, the API pipeline and the /_sandbox/ endpoints.

Pipeline of an accounting API request (`/v3/company/{realmId}/...`), in the gateway's order:
bearer authentication (401) -> company access (403) -> injected 429/500/503 -> throttles (429) -> latency ->
requestid replay or the operation itself -> optional drop of the connection after commit.
Only requests that reach the operation count as performed; a throttled or injected failure consumes no requestid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from . import faults, pages, profiles, webhooks
from .accounting import ENTITY_BY_PATH, Books, rebuild_indexes, seed_company
from .config import Clock, SandboxConfig
from .faults import QboFault
from .injection import FaultInjector
from .limits import Limits
from .oauth import ACCOUNTING_SCOPE, OAuthError, OAuthService
from .store import Company, DataFile, Store, dumps, dumps_stored, qbo_time, to_wire

logger = logging.getLogger(__name__)

DISCOVERY_PATHS = ("/.well-known/openid_configuration", "/.well-known/openid_sandbox_configuration")
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"
API_PREFIX = "/v3/company/"
MAX_REQUESTID = 50  # Intuit: "The RequestID can have a maximum of 50 characters for all operations except batch."
MAX_BATCH_REQUESTID = 36
POLL_INTERVAL = 0.02  # how quickly stop() is noticed; tests start and stop a server each


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.body.decode("latin-1")

    def json(self) -> object:
        return json.loads(self.text() or "null")

    def form(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.text(), keep_blank_values=True).items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    after: list = field(default_factory=list)  # callables run once the answer is written (or dropped)


# What Intuit's App Partner Program meters, per request performed (QBO.md, "Limits and cost"): reads and queries
# ("CorePlus": GET of an object, the query endpoint, CDC, reports) are metered; writes ("Core": create, update,
# delete, void) are not. A batch is counted apart: its items are creates here.
METERED_KINDS = ("reads", "writes", "batches")


def _metered_kind(method: str, rest: str) -> str:
    head = rest.strip("/").split("/")[0].lower()
    if head == "batch":
        return "batches"
    if method == "GET" or head == "query":
        return "reads"
    return "writes"


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(to_wire(body)).encode(), headers=headers or {})


def _html(status: int, body: bytes) -> Response:
    return Response(status, body, "text/html; charset=utf-8")


def _redirect(location: str) -> Response:
    return Response(302, b"", "text/plain", {"Location": location})


def _with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class Authorization:
    """What the consent screen hands back: redirect the user agent with these."""

    code: str
    realm_id: str
    state: str


class SandboxApp:
    """Everything behind the socket. Thread-safe; one instance per `SandboxServer`."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.base_url = ""
        self.store = Store()
        self.oauth = OAuthService(config, clock)
        self.limits = Limits(config, clock)
        self.faults = FaultInjector()
        self._company_lock = threading.Lock()
        self.data_file: DataFile | None = None
        if config.data_file:
            self.data_file = DataFile(config.data_file, self.snapshot_text)
            data = self.data_file.load()
            if data:
                self.restore(data)
            self.data_file.start()

    # --- State ---

    def snapshot(self) -> dict:
        return {
            "version": 1,
            "companies": [company.snapshot() for company in self.store.all()],
            "oauth": self.oauth.snapshot(),
        }

    def snapshot_text(self) -> str:
        """`snapshot()` as the data file's JSON text; each company is encoded again only if it changed."""
        companies = ", ".join(company.snapshot_json() for company in self.store.all())
        oauth = dumps_stored(self.oauth.snapshot())
        return f'{{"version": 1, "companies": [{companies}], "oauth": {oauth}}}'

    def restore(self, data: dict) -> None:
        for company_data in data.get("companies", []):
            company = Company.restore(company_data)
            rebuild_indexes(company)
            self.store.add(company)
        self.oauth.restore(data.get("oauth", {}))

    def changed(self, company: Company | None = None) -> None:
        """After a change of `company` (None: of any company, or of the OAuth state): the data file is written
        again, webhooks are sent."""
        for touched in self.store.all() if company is None else [company]:
            touched.touch()
        if self.data_file is not None:
            self.data_file.mark_dirty()
        for each in self.store.all():
            with each.lock:
                events, each.events = each.events, []
            if events and self.config.webhook_url:
                webhooks.emit(self.config, each.realm_id, events)

    def close(self) -> None:
        if self.data_file is not None:
            self.data_file.close()

    def create_company(
        self,
        name: str = "Sandbox Company",
        *,
        profile: str | None = None,
        seed: str | None = None,
        custom_txn_numbers: bool | None = None,
        multicurrency: bool | None = None,
    ) -> Company:
        """A new company of `profile` (profiles.PROFILES; default us-ast); ValueError for an unknown profile/seed."""
        chosen = profiles.get_profile(profile)
        seed = profiles.check_seed(seed)
        with self._company_lock:
            realm_id = "9341" + "".join(str(secrets.randbelow(10)) for _ in range(15))
            while self.store.get(realm_id) is not None:
                realm_id = "9341" + "".join(str(secrets.randbelow(10)) for _ in range(15))
            company = Company(realm_id, name.strip() or "Sandbox Company", self.clock(), chosen.key)
            with company.lock:
                seed_company(
                    company,
                    self.clock(),
                    seed=seed,
                    custom_txn_numbers=custom_txn_numbers,
                    multicurrency=multicurrency,
                )
            self.store.add(company)
        self.changed()
        return company

    def authorize(
        self,
        *,
        redirect_uri: str,
        state: str = "",
        client_id: str | None = None,
        realm_id: str | None = None,
        company_name: str | None = None,
        scope: str = ACCOUNTING_SCOPE,
        profile: str | None = None,
        seed: str | None = None,
    ) -> Authorization:
        client_id = self.config.client_id if client_id is None else client_id
        if not self.oauth.client_known(client_id):
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}", 401)
        if realm_id is None:
            try:
                company = self.create_company(
                    company_name or "Sandbox Company",
                    profile=profile or self.config.company_profile,
                    seed=seed if seed is not None else self.config.company_seed,
                )
            except ValueError as error:
                raise OAuthError("invalid_request", str(error)) from None
            realm_id = company.realm_id
        elif self.store.get(realm_id) is None:
            raise OAuthError("invalid_request", f"no sandbox company with realm id {realm_id}")
        code = self.oauth.issue_code(client_id=client_id, redirect_uri=redirect_uri, realm_id=realm_id, scope=scope)
        return Authorization(code, realm_id, state)

    def reset(self) -> None:
        self.store.clear()
        self.oauth.clear()
        self.faults.clear()
        self.limits.clear()
        self.changed()

    def forget_request_ids(self, realm_id: str | None = None) -> int:
        """Fault switch: forget every remembered requestid answer (one company, or all). Intuit does not document how
        long QuickBooks remembers a requestid; this is the case where it no longer does."""
        forgotten = 0
        for company in self.store.all():
            if realm_id is None or company.realm_id == realm_id:
                with company.lock:
                    forgotten += len(company.requestids)
                    company.requestids.clear()
        self.changed()
        return forgotten

    def create_entity(self, realm_id: str, entity: str, fields: dict) -> dict:
        """Create an object as a person keying it into QuickBooks would (e.g. a payment received against an invoice):
        through the same rules as the API (totals and balances computed, notified), without a request id."""
        company = self._company_or_key_error(realm_id)
        with company.lock:
            answer = Books(company, self.clock()).create(entity, dict(fields))[entity]
        self.changed()
        return to_wire(answer)

    def edit_entity(self, realm_id: str, entity: str, entity_id: str, changes: dict) -> dict:
        """Change an object as a person in QuickBooks would: a sparse update with its current SyncToken, through
        the same rules (totals recomputed, SyncToken bumped). Raises KeyError, or QboFault when QBO would refuse."""
        company = self._company_or_key_error(realm_id)
        with company.lock:
            books = Books(company, self.clock())
            current = books.get(entity, entity_id)
            if current is None:
                raise KeyError(f"{entity} {entity_id}")
            body = {**changes, "Id": current["Id"], "SyncToken": current["SyncToken"], "sparse": True}
            answer = books.update(entity, body)[entity]
        self.changed()
        return to_wire(answer)

    def delete_entity(self, realm_id: str, entity: str, entity_id: str) -> dict:
        """Delete a transaction (Invoice or Payment) by hand, as in QuickBooks."""
        company = self._company_or_key_error(realm_id)
        with company.lock:
            books = Books(company, self.clock())
            current = books.get(entity, entity_id)
            if current is None:
                raise KeyError(f"{entity} {entity_id}")
            answer = books.delete(entity, {"Id": current["Id"], "SyncToken": current["SyncToken"]})[entity]
        self.changed()
        return to_wire(answer)

    def _company_or_key_error(self, realm_id: str) -> Company:
        company = self.store.get(realm_id)
        if company is None:
            raise KeyError(f"company {realm_id}")
        return company

    def company_view(self, company: Company) -> dict:
        with company.lock:
            entities = {name: list(by_id.values()) for name, by_id in company.entities.items()}
            view = {
                "realm_id": company.realm_id,
                "name": company.name,
                "profile": company.profile,
                "entities": to_wire(entities),
            }
        view["stats"] = self.company_stats(company)
        return view

    def company_stats(self, company: Company) -> dict:
        with company.lock:
            counts = {name: len(by_id) for name, by_id in company.entities.items()}
            remembered = len(company.requestids)
        stats = {"requests": 0, "throttled": 0, "injected": 0, "replayed": 0, "dropped": 0, "faults": 0}
        stats.update(dict.fromkeys(METERED_KINDS, 0))
        stats.update(company.stats.as_dict())
        stats["entities"] = counts
        stats["requestids_remembered"] = remembered
        return stats

    # --- Routing ---

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except Exception:
            logger.exception("sandbox failure on %s %s", request.method, request.path)
            error = faults.SERVER_ERROR.body(traceback.format_exc(limit=1).strip().splitlines()[-1])
            return _json(500, error)

    def _route(self, request: Request) -> Response:
        path = request.path
        if path.startswith(API_PREFIX):
            return self._api(request)
        if path.rstrip("/") in DISCOVERY_PATHS:
            return _json(200, self.discovery())
        if path == AUTHORIZE_PATH:
            return self._authorize_page(request) if request.method == "GET" else self._authorize_submit(request)
        if path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        if path == REVOKE_PATH and request.method == "POST":
            return self._revoke(request)
        if path == USERINFO_PATH:
            return self._userinfo(request)
        if path == JWKS_PATH:
            return _json(200, {"keys": []})
        if path.startswith("/_sandbox/"):
            return self._admin(request)
        if path == "/":
            companies = [(c.realm_id, c.name, c.profile) for c in self.store.all()]
            return _html(
                200, pages.index_page(base_url=self.base_url, client_id=self.config.client_id, companies=companies)
            )
        return _json(404, {"error": "not_found", "path": path})

    # --- OAuth ---

    def discovery(self) -> dict:
        base = self.base_url
        return {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "userinfo_endpoint": base + USERINFO_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "jwks_uri": base + JWKS_PATH,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone", ACCOUNTING_SCOPE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def _authorize_checks(self, params: dict[str, str]) -> Response | None:
        """Refusals of an authorization request, RFC 6749 4.1.2.1: a bad client or redirect_uri is shown to the
        user (never redirected to); other errors go back to the redirect_uri."""
        if not self.oauth.client_known(params.get("client_id", "")):
            return _html(400, pages.error_page("Unknown client_id."))
        redirect_uri = params.get("redirect_uri", "")
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return _html(400, pages.error_page("Missing or invalid redirect_uri."))
        state = {"state": params["state"]} if "state" in params else {}
        if params.get("response_type") != "code":
            return _redirect(_with_params(redirect_uri, {"error": "unsupported_response_type", **state}))
        if not params.get("scope"):
            return _redirect(_with_params(redirect_uri, {"error": "invalid_scope", **state}))
        return None

    def _authorize_page(self, request: Request) -> Response:
        refusal = self._authorize_checks(request.query)
        if refusal is not None:
            return refusal
        companies = [(c.realm_id, c.name) for c in self.store.all()]
        choices = [(p.key, p.description) for p in profiles.PROFILES.values()]
        return _html(
            200,
            pages.consent_page(
                params=request.query,
                companies=companies,
                profiles=choices,
                default_profile=self.config.company_profile,
                default_seed=self.config.company_seed,
            ),
        )

    def _authorize_submit(self, request: Request) -> Response:
        form = request.form()
        refusal = self._authorize_checks(form)
        if refusal is not None:
            return refusal
        state = {"state": form["state"]} if "state" in form else {}
        if form.get("action") != "approve":
            return _redirect(_with_params(form["redirect_uri"], {"error": "access_denied", **state}))
        realm_id = form.get("realm_id", "new")
        try:
            grant = self.authorize(
                redirect_uri=form["redirect_uri"],
                state=form.get("state", ""),
                client_id=form["client_id"],
                realm_id=None if realm_id == "new" else realm_id,
                company_name=form.get("company_name"),
                scope=form["scope"],
                profile=form.get("company_profile") or None,
                seed=form.get("company_seed") or "none",  # an unticked box sends nothing: no seed
            )
        except OAuthError as error:
            return _html(400, pages.error_page(error.description))
        params = {"code": grant.code, **state, "realmId": grant.realm_id}
        return _redirect(_with_params(form["redirect_uri"], params))

    def _token(self, request: Request) -> Response:
        injected = self._inject(None, request, ("500", "503", "429"))
        if injected is not None:
            return injected
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            client_id = self.oauth.authenticate_client(request.header("Authorization"))
            form = request.form()
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                if not form.get("code") or not form.get("redirect_uri"):
                    raise OAuthError("invalid_request", "code and redirect_uri are required")
                body = self.oauth.exchange_code(
                    client_id=client_id, code=form["code"], redirect_uri=form["redirect_uri"]
                )
            elif grant_type == "refresh_token":
                if not form.get("refresh_token"):
                    raise OAuthError("invalid_request", "refresh_token is required")
                body = self.oauth.refresh(client_id=client_id, refresh_token=form["refresh_token"])
            else:
                raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        except OAuthError as error:
            return _json(error.status, error.body(), no_store)
        self.changed()
        if self.faults.take(realm_id=None, path=request.path, method=request.method, kinds=("drop_after_commit",)):
            return Response(200, drop=True)
        return _json(200, body, no_store)

    def _revoke(self, request: Request) -> Response:
        try:
            client_id = self.oauth.authenticate_client(request.header("Authorization"))
            content_type = (request.header("Content-Type") or "").lower()
            try:
                payload = request.json() if "json" in content_type else request.form()
            except ValueError:
                payload = None
            token = payload.get("token") if isinstance(payload, dict) else None
            if not token:
                raise OAuthError("invalid_request", "token is required")
            self.oauth.revoke(client_id=client_id, token=token)
        except OAuthError as error:
            return _json(error.status, error.body())
        self.changed()
        return Response(200)

    def _userinfo(self, request: Request) -> Response:
        grant = self.oauth.authenticate_bearer(request.header("Authorization"))
        if grant is None:
            return _json(401, faults.AUTHENTICATION_FAILED.body())
        return _json(
            200,
            {
                "sub": f"sandbox-user-{grant.realm_id}",
                "email": "sandbox.user@example.com",
                "emailVerified": True,
                "givenName": "Sandbox",
                "familyName": "User",
            },
        )

    # --- Accounting API ---

    def _delay(self) -> None:
        if self.config.latency_ms:
            time.sleep(self.config.latency_ms / 1000)

    def _inject(self, realm_id: str | None, request: Request, kinds: tuple[str, ...]) -> Response | None:
        kind = self.faults.take(realm_id=realm_id, path=request.path, method=request.method, kinds=kinds)
        if kind is None:
            return None
        company = self.store.get(realm_id) if realm_id else None
        if kind == "429":
            if company is not None:
                company.stats.add("throttled")
            return _json(429, faults.THROTTLE_EXCEEDED.body())
        if company is not None:
            company.stats.add("injected")
        error = faults.SERVER_ERROR if kind == "500" else faults.SERVICE_UNAVAILABLE
        return _json(error.status, error.body())

    def _api(self, request: Request) -> Response:
        realm_id, _, rest = request.path[len(API_PREFIX) :].partition("/")
        grant = self.oauth.authenticate_bearer(request.header("Authorization"))
        if grant is None:
            self._delay()
            return _json(401, faults.AUTHENTICATION_FAILED.body("Token expired or invalid"))
        company = self.store.get(realm_id)
        if company is None or grant.realm_id != realm_id:
            self._delay()
            return _json(403, faults.AUTHORIZATION_FAILED.body("The token is not authorized for this company"))
        injected = self._inject(realm_id, request, ("500", "503", "429"))
        if injected is not None:
            self._delay()
            return injected
        limiter = self.limits.for_realm(realm_id)
        reason = limiter.try_acquire(is_batch=rest.strip("/").lower() == "batch")
        if reason is not None:
            company.stats.add("throttled")
            self._delay()
            return _json(429, faults.THROTTLE_EXCEEDED.body(f"The request limit was reached ({reason})."))
        try:
            self._delay()
            response = self._perform(company, request, rest)
            if self.faults.take(
                realm_id=realm_id, path=request.path, method=request.method, kinds=("drop_after_commit",)
            ):
                company.stats.add("dropped")
                response.drop = True
        except BaseException:
            limiter.release()
            raise
        response.after.append(limiter.release)
        return response

    def _perform(self, company: Company, request: Request, rest: str) -> Response:
        requestid = request.query.get("requestid")
        is_batch = rest.strip("/").lower() == "batch"
        limit = MAX_BATCH_REQUESTID if is_batch else MAX_REQUESTID
        with company.lock:
            company.stats.add("requests")
            company.stats.add(_metered_kind(request.method, rest))
            if requestid is not None and len(requestid) > limit:
                # Observed QBO answer to an over-long requestid: a 6000 business validation error. It is not
                # remembered: the id is not valid.
                fault = faults.business_validation(
                    f"You cannot enter more than {limit} characters in the request_id field. You tried entering "
                    f"{requestid[:10]}..., which is {len(requestid)} characters."
                )
                company.stats.add("faults")
                body = {"Fault": fault.fault(), "time": qbo_time(self.clock(), millis=True)}
                return Response(fault.status, dumps(body))
            if requestid:
                remembered = company.requestids.get(requestid)
                if remembered is not None:
                    # Intuit: "If the service receives another request with the same RequestID, instead of
                    # performing the operation again or returning an error, the service sends the same response
                    # as it did for the original request." That includes a Fault answer: the original request
                    # was processed, and its answer (whatever it was) is what a retry gets.
                    company.stats.add("replayed")
                    status, body = remembered
                    return Response(status, body)
            try:
                status, body = 200, self._dispatch(company, request, rest, requestid)
            except QboFault as fault:
                company.stats.add("faults")
                status, body = fault.status, {"Fault": fault.fault()}
            body["time"] = qbo_time(self.clock(), millis=True)
            data = dumps(body)
            if requestid:
                company.remember(requestid, status, data, self.config.requestid_retention)
        if requestid or request.method == "POST":
            self.changed(company)
        return Response(status, data)

    def _dispatch(self, company: Company, request: Request, rest: str, requestid: str | None) -> dict:
        books = Books(company, self.clock())
        parts = [part for part in rest.split("/") if part]
        head = parts[0].lower() if parts else ""
        if head == "query" and len(parts) == 1:
            text = request.query.get("query", "") if request.method == "GET" else request.text()
            if not text.strip():
                raise faults.query_parser_error('Encountered "<EOF>" at line 1, column 1.')
            return books.query(text)
        if head == "batch" and len(parts) == 1 and request.method == "POST":
            body = self._body(request)
            if (
                self.faults.take(
                    realm_id=company.realm_id, path=request.path, method=request.method, kinds=("batch_item_10000",)
                )
                and isinstance(body.get("BatchItemRequest"), list)
                and body["BatchItemRequest"]
            ):
                first, *rest_items = body["BatchItemRequest"]
                answers = []
                if rest_items:
                    answers = books.batch({"BatchItemRequest": rest_items}, requestid)["BatchItemResponse"]
                company.stats.add("injected")
                fault = {
                    "Error": [
                        {
                            "Message": faults.SERVER_ERROR.message,
                            "Detail": "System Failure Error: injected by the sandbox (batch item)",
                            "code": "10000",
                        }
                    ],
                    "type": "SystemFault",
                }
                return {"BatchItemResponse": [{"bId": first.get("bId", ""), "Fault": fault}, *answers]}
            return books.batch(body, requestid)
        if head == "cdc" and len(parts) == 1 and request.method == "GET":
            return books.cdc(request.query.get("entities", ""), request.query.get("changedSince", ""))
        name = ENTITY_BY_PATH.get(head)
        if name == "Preferences" and len(parts) == 1 and request.method == "GET":
            return books.preferences()  # python-quickbooks: Preferences.get(qb=...) -> GET /preferences
        if name is not None and request.method == "GET" and len(parts) == 2:
            return books.read(name, parts[1])
        if name in ("TaxCode", "TaxRate") and request.method == "POST":
            # Intuit: tax codes and rates are made through the TaxService endpoint (not modelled) or by AST.
            raise faults.unsupported_operation(f"{request.method} /{rest}")
        if name is not None and request.method == "POST" and len(parts) == 1:
            body = self._body(request)
            if isinstance(body.get(name), dict) and len(body) == 1:
                body = body[name]  # accept {"Customer": {...}} as well as the bare object
            operation = request.query.get("operation", "").lower()
            include = request.query.get("include", "").lower()
            if operation == "delete":
                return books.delete(name, body)
            if operation == "void" or (operation == "update" and include == "void"):
                return books.void(name, body)
            if operation in ("", "update", "create"):
                has_id = body.get("Id") not in (None, "")
                return books.update(name, body) if has_id else books.create(name, body)
        raise faults.unsupported_operation(f"{request.method} /{rest}")

    def _body(self, request: Request) -> dict:
        try:
            body = request.json()
        except ValueError:
            raise faults.invalid_property("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise faults.invalid_property("The request body must be a JSON object")
        return body

    # --- /_sandbox/: tests and demos ---

    def _admin(self, request: Request) -> Response:
        parts = [part for part in request.path[len("/_sandbox/") :].split("/") if part]
        method = request.method
        try:
            payload = request.json() if request.body else {}
        except ValueError:
            return _json(400, {"error": "the body must be JSON"})
        if not isinstance(payload, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        if parts == ["companies"] and method == "GET":
            companies = [{"realm_id": c.realm_id, "name": c.name, "profile": c.profile} for c in self.store.all()]
            return _json(200, {"companies": companies})
        if parts == ["companies"] and method == "POST":
            try:
                company = self.create_company(
                    str(payload.get("name") or "Sandbox Company"),
                    profile=payload.get("profile") or self.config.company_profile,
                    seed=payload.get("seed", self.config.company_seed),
                    custom_txn_numbers=payload.get("custom_txn_numbers"),
                    multicurrency=payload.get("multicurrency"),
                )
            except ValueError as error:
                return _json(400, {"error": str(error)})
            return _json(201, {"realm_id": company.realm_id, "name": company.name, "profile": company.profile})
        if len(parts) in (2, 3) and parts[0] == "companies" and method == "GET":
            company = self.store.get(parts[1])
            if company is None:
                return _json(404, {"error": f"no company {parts[1]}"})
            if len(parts) == 3 and parts[2] == "stats":
                return _json(200, self.company_stats(company))
            if len(parts) == 2:
                return _json(200, self.company_view(company))
        if len(parts) == 4 and parts[0] == "companies" and parts[2] == "payments" and method == "GET":
            company = self.store.get(parts[1])
            if company is None:
                return _json(404, {"error": f"no company {parts[1]}"})
            with company.lock:
                payment = company.entities.get("Payment", {}).get(parts[3])
                invoices = dict(company.entities.get("Invoice", {}))
                page = pages.payment_page(
                    company_name=company.name, payment=to_wire(payment), invoices=to_wire(invoices)
                )
            return _html(200 if payment is not None else 404, page)
        if len(parts) == 5 and parts[0] == "companies" and parts[2] == "entities" and method == "POST":
            # A change made "by hand in QuickBooks": {"changes": {...}} (a sparse update), or {"delete": true}.
            try:
                if payload.get("delete"):
                    entity = self.delete_entity(parts[1], parts[3], parts[4])
                else:
                    entity = self.edit_entity(parts[1], parts[3], parts[4], payload.get("changes") or {})
            except KeyError as error:
                return _json(404, {"error": f"no {error.args[0]}"})
            except QboFault as fault:
                return _json(fault.status, {"Fault": fault.fault()})
            return _json(200, entity)
        if parts == ["faults"]:
            if method == "GET":
                return _json(200, {"faults": self.faults.list()})
            if method == "DELETE":
                self.faults.clear()
                return _json(200, {"faults": []})
            if method == "POST":
                try:
                    rule = self.faults.add(
                        payload.get("kind", ""),
                        count=int(payload.get("count", 1)),
                        realm_id=payload.get("realm_id"),
                        path_contains=payload.get("path_contains"),
                        method=payload.get("method"),
                    )
                except (TypeError, ValueError) as error:
                    return _json(400, {"error": str(error)})
                return _json(201, {"id": rule.id, "kind": rule.kind, "remaining": rule.remaining})
        if parts == ["forget-requestids"] and method == "POST":
            return _json(200, {"forgotten": self.forget_request_ids(payload.get("realm_id"))})
        if parts == ["expire-tokens"] and method == "POST":
            return _json(200, {"expired": self.oauth.expire_access_tokens(payload.get("realm_id"))})
        if parts == ["authorize"] and method == "POST":
            try:
                grant = self.authorize(
                    redirect_uri=str(payload.get("redirect_uri", "")),
                    state=str(payload.get("state", "")),
                    client_id=payload.get("client_id"),
                    realm_id=payload.get("realm_id"),
                    company_name=payload.get("company_name"),
                    profile=payload.get("profile"),
                    seed=payload.get("seed"),
                )
            except OAuthError as error:
                return _json(error.status, error.body())
            return _json(200, {"code": grant.code, "realm_id": grant.realm_id, "state": grant.state})
        if parts == ["reset"] and method == "POST":
            self.reset()
            return _json(200, {"reset": True})
        return _json(404, {"error": f"no sandbox endpoint {method} {request.path}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "QBOSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body are written apart: without this, each answer waits ~40 ms
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the name BaseHTTPRequestHandler dispatches to
        self._serve()

    do_POST = do_DELETE = do_PUT = do_GET  # noqa: N815

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        request = Request(self.command, split.path, query, self.headers, body)
        response = self.server.app.handle(request)
        try:
            if response.drop:
                # Committed but unanswered: the client sees the connection close with no response.
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("intuit_tid", secrets.token_hex(12))
            self.end_headers()
            self.wfile.write(response.body)
        finally:
            for callback in response.after:
                callback()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        if logger.isEnabledFor(logging.DEBUG):  # one line per request: not even formatted unless wanted
            logger.debug("%s %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: SandboxApp

    def handle_error(self, request, client_address) -> None:
        """A client that hung up before its answer was written (its own timeout) is the client's business, as it
        is for QuickBooks: logged at debug, not printed as a traceback. Anything else is still reported."""
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            logger.debug("%s hung up before its answer was written", client_address)
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """A local QuickBooks Online: OAuth 2.0 + the accounting API v3, in memory, on one port.

    The `/_sandbox/` endpoints (fault injection, inspection, reset) need no authentication: they exist for tests
    and demos, and the server binds to 127.0.0.1 unless told otherwise. Do not expose it to a network.

        server = SandboxServer(SandboxConfig(latency_ms=150)).start()
        auth_client = AuthClient(cfg.client_id, cfg.client_secret, redirect_uri, server.discovery_url)
        ...
        server.stop()
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.app = SandboxApp(self.config, clock or time.time)
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self.app
        self.host = host
        self.port = self._httpd.server_address[1]
        self.app.base_url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._serving = False

    @property
    def base_url(self) -> str:
        return self.app.base_url

    @property
    def discovery_url(self) -> str:
        return self.base_url + DISCOVERY_PATHS[0]

    @property
    def api_url(self) -> str:
        """What python-quickbooks calls `api_url_v3`."""
        return self.base_url + "/v3"

    def start(self) -> SandboxServer:
        """Serve on a daemon thread and return at once."""
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(POLL_INTERVAL,), name="qbo-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until `stop()` (from another thread) or KeyboardInterrupt."""
        self._serving = True
        try:
            self._httpd.serve_forever(POLL_INTERVAL)
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving and write the data file; calling it again does nothing."""
        if self._closed:
            return
        if self._serving:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._httpd.server_close()
        self.app.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- Conveniences for tests (the same as the /_sandbox/ endpoints) ---

    def create_company(
        self,
        name: str = "Sandbox Company",
        *,
        profile: str | None = None,
        seed: str | None = None,
        custom_txn_numbers: bool | None = None,
        multicurrency: bool | None = None,
    ) -> str:
        """Create a company of `profile` ("us-ast" default, "us-manual-tax", "ca", "uk", "au"); `seed="collisions"`
        adds QuickBooks data that collides with FieldSync's demo. Returns its realm id. The config's
        company_profile / company_seed are NOT applied here: name them to get them."""
        return self.app.create_company(
            name,
            profile=profile,
            seed=seed,
            custom_txn_numbers=custom_txn_numbers,
            multicurrency=multicurrency,
        ).realm_id

    def create_entity(self, realm_id: str, entity: str, fields: dict) -> dict:
        """Key an object into QuickBooks "by hand" (e.g. a payment against an invoice FieldSync exported)."""
        return self.app.create_entity(realm_id, entity, fields)

    def edit_entity(self, realm_id: str, entity: str, entity_id: str, changes: dict) -> dict:
        """Change an object "by hand in QuickBooks" (sparse update, SyncToken bumped, totals recomputed)."""
        return self.app.edit_entity(realm_id, entity, entity_id, changes)

    def deactivate(self, realm_id: str, entity: str, entity_id: str) -> dict:
        """Make a customer, item, account, payment method or tax code inactive, as a person in QuickBooks would."""
        return self.app.edit_entity(realm_id, entity, entity_id, {"Active": False})

    def delete_entity(self, realm_id: str, entity: str, entity_id: str) -> dict:
        """Delete an Invoice or Payment by hand."""
        return self.app.delete_entity(realm_id, entity, entity_id)

    def authorize(
        self,
        redirect_uri: str,
        *,
        state: str = "",
        client_id: str | None = None,
        realm_id: str | None = None,
        company_name: str | None = None,
        profile: str | None = None,
        seed: str | None = None,
    ) -> Authorization:
        """What approving the consent screen does: a code for `redirect_uri` (a new company of `profile`, or the
        config's company_profile, unless `realm_id`)."""
        return self.app.authorize(
            redirect_uri=redirect_uri,
            state=state,
            client_id=client_id,
            realm_id=realm_id,
            company_name=company_name,
            profile=profile,
            seed=seed,
        )

    def expire_access_tokens(self, realm_id: str | None = None) -> int:
        return self.app.oauth.expire_access_tokens(realm_id)

    def forget_request_ids(self, realm_id: str | None = None) -> int:
        return self.app.forget_request_ids(realm_id)

    def add_fault(
        self,
        kind: str | int,
        *,
        count: int = 1,
        realm_id: str | None = None,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> int:
        """Fail the next `count` matching requests: "500", "503", "429" or "drop_after_commit"; returns its id."""
        rule = self.app.faults.add(kind, count=count, realm_id=realm_id, path_contains=path_contains, method=method)
        return rule.id

    def clear_faults(self) -> None:
        self.app.faults.clear()

    def companies(self) -> list[dict]:
        return [{"realm_id": c.realm_id, "name": c.name, "profile": c.profile} for c in self.app.store.all()]

    def entities(self, realm_id: str, entity: str) -> list[dict]:
        """A copy of one company's entities of one type, as the API answers them."""
        return self._company(realm_id)["entities"][entity]

    def stats(self, realm_id: str) -> dict:
        company = self.app.store.get(realm_id)
        if company is None:
            raise KeyError(realm_id)
        return self.app.company_stats(company)

    def reset(self) -> None:
        self.app.reset()

    def _company(self, realm_id: str) -> dict:
        company = self.app.store.get(realm_id)
        if company is None:
            raise KeyError(realm_id)
        return self.app.company_view(company)
