"""Emulated Entra ID (client credentials only) and the bearer-token check both emulators use.

The token authority serves what ``msal.ConfidentialClientApplication`` needs: the OpenID discovery
document, the signing keys and ``/oauth2/v2.0/token``. Errors use Entra's JSON shape and AADSTS codes.
Access tokens are RS256 JWTs whose ``aud`` is the emulated resource's origin; each system checks
signature, expiry, not-before, issuer and audience, then stores a ``Principal`` in
``request["principal"]``. Ids are derived from the client id, so they are stable across restarts:
the service principal's ``oid`` and the Dataverse application user's systemuser id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.sandbox.contracts import Principal, SystemName

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_RESERVED_SCOPES = {"openid", "profile", "offline_access"}
_VERIFIED_CACHE_SIZE = 4096


def object_id_for(client_id: str) -> str:
    """The service principal's Entra object id (``oid``) for a client id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-sp:" + client_id))


def user_id_for(client_id: str) -> str:
    """The Dataverse application user's systemuser id for a client id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "dualwrite-sandbox-user:" + client_id))


@dataclass(frozen=True, slots=True)
class ClientApp:
    client_id: str
    secret: str
    name: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(
            client_id=self.client_id,
            object_id=object_id_for(self.client_id),
            user_id=user_id_for(self.client_id),
            name=self.name or self.client_id,
        )


class TokenRejected(Exception):
    """A bearer token failed verification; ``reason`` says why (for logs and tests, not clients)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_signing_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key must be an RSA private key")
    return key


def signing_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class TokenAuthority:
    """Issues and verifies access tokens; ``base_url`` (``https://host:port``) is set once bound."""

    def __init__(
        self,
        *,
        tenant_id: str,
        clients: Iterable[ClientApp],
        resources: Iterable[str] = (),
        token_lifetime: int = 3600,
        signing_key: rsa.RSAPrivateKey | None = None,
        base_url: str = "",
    ) -> None:
        self.tenant_id = tenant_id
        self.clients = {c.client_id: c for c in clients}
        self.resources = {r.rstrip("/") for r in resources}
        self.token_lifetime = token_lifetime
        self._key = signing_key or new_signing_key()
        self._public = self._key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        self.base_url = base_url.rstrip("/")
        self._verified: dict[tuple[str, str], tuple[Principal, float, float]] = {}

    # ------------------------------------------------------------------ URLs
    @property
    def authority(self) -> str:
        """What ``msal`` takes as ``authority``."""
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    def discovery_document(self) -> dict[str, Any]:
        t = self.authority
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{t}/oauth2/v2.0/authorize",
            "token_endpoint": f"{t}/oauth2/v2.0/token",
            "jwks_uri": f"{t}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "grant_types_supported": ["client_credentials"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "sandbox",
        }

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self._public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", "issuer": self.issuer})
        return {"keys": [jwk]}

    # ------------------------------------------------------------------ tokens
    def issue(
        self, client_id: str, resource: str, *, now: float | None = None, lifetime: int | None = None
    ) -> str:
        """A signed access token for ``client_id`` and ``resource`` (also used by tests directly)."""
        client = self.clients[client_id]
        iat = int(now if now is not None else time.time())
        oid = object_id_for(client.client_id)
        claims = {
            "aud": resource.rstrip("/"),
            "iss": self.issuer,
            "iat": iat,
            "nbf": iat,
            "exp": iat + (self.token_lifetime if lifetime is None else lifetime),
            "tid": self.tenant_id,
            "appid": client.client_id,
            "azp": client.client_id,
            "app_displayname": client.name or client.client_id,
            "idtyp": "app",
            "oid": oid,
            "sub": oid,
            "ver": "2.0",
            "uti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str, audience: str) -> Principal:
        """The caller of a valid token; ``TokenRejected`` otherwise. A token already verified for this
        audience is only re-checked for its time window (decoding costs more than a request)."""
        audience = audience.rstrip("/")
        cached = self._verified.get((token, audience))
        if cached is not None:
            principal, nbf, exp = cached
            now = time.time()
            if now < nbf:
                raise TokenRejected("ImmatureSignatureError: The token is not yet valid (nbf)")
            if now >= exp:
                raise TokenRejected("ExpiredSignatureError: Signature has expired")
            return principal
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"malformed token: {exc}") from exc
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenRejected("unknown signing key or algorithm")
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                audience=audience,
                issuer=self.issuer,
                options={"require": ["exp", "nbf", "iat", "aud", "iss", "appid", "oid"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"{type(exc).__name__}: {exc}") from exc
        client = self.clients.get(str(claims["appid"]))
        if client is None:
            raise TokenRejected("token for an unknown client")
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[(token, audience)] = (client.principal, float(claims["nbf"]), float(claims["exp"]))
        return client.principal

    # ------------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        return app

    def _tenant_ok(self, request: web.Request) -> bool:
        return request.match_info["tenant"] in (self.tenant_id,)

    async def _discovery(self, request: web.Request) -> web.Response:
        if not self._tenant_ok(request):
            return self._tenant_not_found(request)
        return web.json_response(self.discovery_document())

    async def _keys(self, request: web.Request) -> web.Response:
        if not self._tenant_ok(request):
            return self._tenant_not_found(request)
        return web.json_response(self.jwks())

    def _tenant_not_found(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        return aadsts_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
            "into the correct cloud.",
        )

    async def _token(self, request: web.Request) -> web.Response:
        if not self._tenant_ok(request):
            return self._tenant_not_found(request)
        form = await request.post()
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        basic = _basic_credentials(request.headers.get("Authorization", ""))
        client_id = fields.get("client_id") or (basic[0] if basic else "")
        secret = fields.get("client_secret") or (basic[1] if basic else "")
        grant = fields.get("grant_type", "")
        if not grant:
            return _missing("grant_type")
        if grant != "client_credentials":
            return aadsts_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        if not client_id:
            return _missing("client_id")
        client = self.clients.get(client_id)
        if client is None:
            return aadsts_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
            )
        if not secret:
            return aadsts_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(secret.encode(), client.secret.encode()):
            return aadsts_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        scopes = [s for s in fields.get("scope", "").split() if s not in _RESERVED_SCOPES]
        if not scopes:
            return _missing("scope")
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return aadsts_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0][: -len("/.default")].rstrip("/")
        if resource not in self.resources:
            return aadsts_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You might have "
                "sent your authentication request to the wrong tenant.",
            )
        token = self.issue(client_id, resource)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _missing(param: str) -> web.Response:
    return aadsts_error(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{param}'."
    )


def aadsts_error(status: int, error: str, code: int, description: str) -> web.Response:
    """Entra ID's error JSON: ``AADSTS<code>: <text>`` plus trace and correlation ids and a timestamp."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: "
        f"{correlation_id} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return web.json_response(body, status=status)


def _store(request: web.Request, key: str, value: Any) -> None:
    # The seam with the engines is the plain key ``request["principal"]`` (contracts.py); aiohttp
    # recommends RequestKey objects and warns once per string key, which is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request[key] = value


def bearer_auth_middleware(
    authority: TokenAuthority,
    audience: str,
    *,
    system: SystemName,
    skip_prefixes: tuple[str, ...] = ("/_sandbox/",),
) -> Middleware:
    """Verify ``Authorization: Bearer`` for ``audience`` and set ``request["principal"]``.

    Both systems answer 401 with an empty body and a ``WWW-Authenticate`` challenge naming the
    authority, as the real ones do (Dataverse adds ``error=invalid_token`` when a token was sent)."""
    audience = audience.rstrip("/")

    def challenge(invalid: bool) -> web.Response:
        parts = []
        if invalid and system == "dataverse":
            parts.append('error=invalid_token, error_description="Error during token validation!"')
        parts.append(f"authorization_uri={authority.authority}/oauth2/authorize")
        parts.append(f"resource_id={audience}/")
        return web.Response(status=401, headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)})

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(skip_prefixes):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return challenge(invalid=False)
        try:
            _store(request, "principal", authority.verify(token.strip(), audience))
        except TokenRejected as exc:
            _store(request, "auth_failure", exc.reason)
            return challenge(invalid=True)
        return await handler(request)

    return middleware
