"""OAuth 2.0 as Intuit runs it: authorization codes, bearer tokens, rotating refresh tokens, revocation.

One authorization (a user approving the app for a company) starts a token *family*; every refresh issues a new
access token and a new refresh token of the same family. The refresh token that was used keeps working for
`rotated_refresh_grace` (QBO.md: "the old one dies about 24 h later"). Revoking any token of a family revokes the
whole family. Token answers carry no `id_token`: intuit-oauth would try to validate it against `jwks_uri`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from dataclasses import asdict, dataclass

from .config import Clock, SandboxConfig

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class OAuthError(Exception):
    """An RFC 6749 error answer: `{"error": code}` with an HTTP status (400, or 401 for invalid_client)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    realm_id: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class TokenFamily:
    family_id: str
    client_id: str
    realm_id: str
    scope: str
    revoked: bool = False


@dataclass
class AccessToken:
    family_id: str
    expires_at: float


@dataclass
class RefreshToken:
    family_id: str
    expires_at: float
    rotated_at: float | None = None  # when a newer refresh token replaced this one


@dataclass(frozen=True)
class Grant:
    """What a valid bearer token allows: this client, on this company, with this scope."""

    client_id: str
    realm_id: str
    scope: str


class OAuthService:
    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, AuthorizationCode] = {}
        self._families: dict[str, TokenFamily] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}

    # --- Clients ---

    def client_known(self, client_id: str) -> bool:
        return secrets.compare_digest(client_id.encode(), self.config.client_id.encode())

    def authenticate_client(self, authorization: str | None) -> str:
        """The client id from an HTTP Basic `Authorization` header; Intuit authenticates clients only this way."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "HTTP Basic client authentication is required", 401)
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        if not (self.client_known(client_id) and secrets.compare_digest(secret, self.config.client_secret)):
            raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
        return client_id

    # --- Authorization codes ---

    def issue_code(self, *, client_id: str, redirect_uri: str, realm_id: str, scope: str) -> str:
        code = "AB11" + secrets.token_urlsafe(36)
        with self._lock:
            self._codes[code] = AuthorizationCode(
                client_id, redirect_uri, realm_id, scope, self.clock() + self.config.authorization_code_ttl
            )
        return code

    def exchange_code(self, *, client_id: str, code: str, redirect_uri: str) -> dict:
        with self._lock:
            grant = self._codes.get(code)
            # Codes are single-use, short-lived and bound to the client and redirect_uri they were issued for.
            if grant is None or grant.used:
                raise OAuthError("invalid_grant", "unknown or already used authorization code")
            if grant.expires_at <= self.clock():
                raise OAuthError("invalid_grant", "the authorization code has expired")
            if grant.client_id != client_id or grant.redirect_uri != redirect_uri:
                raise OAuthError("invalid_grant", "the code was issued to another client or redirect_uri")
            grant.used = True
            family = TokenFamily(secrets.token_hex(8), client_id, grant.realm_id, grant.scope)
            self._families[family.family_id] = family
            return self._issue(family)

    # --- Tokens ---

    def _issue(self, family: TokenFamily) -> dict:
        now = self.clock()
        access_token = "eyJsandbox." + secrets.token_urlsafe(48)
        refresh_token = "AB11" + secrets.token_urlsafe(36)
        self._access[access_token] = AccessToken(family.family_id, now + self.config.access_token_ttl)
        self._refresh[refresh_token] = RefreshToken(family.family_id, now + self.config.refresh_token_ttl)
        return {
            "token_type": "bearer",
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_in": self.config.access_token_ttl,
            "x_refresh_token_expires_in": self.config.refresh_token_ttl,
        }

    def refresh(self, *, client_id: str, refresh_token: str) -> dict:
        with self._lock:
            now = self.clock()
            token = self._refresh.get(refresh_token)
            family = self._families.get(token.family_id) if token else None
            if token is None or family is None or family.revoked:
                raise OAuthError("invalid_grant", "unknown or revoked refresh token")
            if family.client_id != client_id:
                raise OAuthError("invalid_grant", "the refresh token belongs to another client")
            if token.expires_at <= now:
                raise OAuthError("invalid_grant", "the refresh token has expired")
            if token.rotated_at is not None and token.rotated_at + self.config.rotated_refresh_grace <= now:
                raise OAuthError("invalid_grant", "the refresh token was replaced by a newer one and has expired")
            if token.rotated_at is None:
                token.rotated_at = now
            return self._issue(family)

    def revoke(self, *, client_id: str, token: str) -> None:
        """Revoke the family of an access or refresh token.

        *unconfirmed*: an unknown token is answered 200 like a revoked one (RFC 7009 section 2.2).
        """
        with self._lock:
            record = self._refresh.get(token) or self._access.get(token)
            family = self._families.get(record.family_id) if record else None
            if family is not None and family.client_id == client_id:
                family.revoked = True

    def authenticate_bearer(self, authorization: str | None) -> Grant | None:
        """The grant of a valid `Authorization: Bearer` header, or None (missing, unknown, expired, revoked)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with self._lock:
            access = self._access.get(token.strip())
            family = self._families.get(access.family_id) if access else None
            if access is None or family is None or family.revoked or access.expires_at <= self.clock():
                return None
            return Grant(family.client_id, family.realm_id, family.scope)

    def expire_access_tokens(self, realm_id: str | None = None) -> int:
        """Make every access token (of one company, or all) expired now; returns how many were live."""
        with self._lock:
            now = self.clock()
            expired = 0
            for access in self._access.values():
                family = self._families[access.family_id]
                if (realm_id is None or family.realm_id == realm_id) and access.expires_at > now:
                    access.expires_at = now
                    expired += 1
            return expired

    def clear(self) -> None:
        with self._lock:
            self._codes.clear()
            self._families.clear()
            self._access.clear()
            self._refresh.clear()

    # --- The data file ---

    def snapshot(self) -> dict:
        with self._lock:
            now = self.clock()
            return {
                "families": [asdict(family) for family in self._families.values()],
                "access": {token: asdict(a) for token, a in self._access.items() if a.expires_at > now},
                "refresh": {token: asdict(r) for token, r in self._refresh.items() if r.expires_at > now},
            }

    def restore(self, data: dict) -> None:
        with self._lock:
            self._families = {f["family_id"]: TokenFamily(**f) for f in data.get("families", [])}
            self._access = {token: AccessToken(**a) for token, a in data.get("access", {}).items()}
            self._refresh = {token: RefreshToken(**r) for token, r in data.get("refresh", {}).items()}
