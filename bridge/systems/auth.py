"""Client-credential tokens from Entra ID (or the sandbox's emulation of it) through msal.

msal is synchronous and its constructor does blocking I/O (OIDC discovery), so the application is
created lazily and every call runs in a worker thread. msal caches tokens itself; the provider also
keeps the last token for half of the life it had left when msal handed it over, so a request to
Dataverse or F&O costs no hop to a thread (and no cache search in msal) while it lasts. msal's own
rules (a token with under five minutes left counts as expired, proactive refresh) still decide
what the next call gets, and ``refresh`` (after a 401) bypasses both caches.

Errors: an ``{"error": ...}`` answer naming bad credentials or scope -> ``ConfigError`` (retrying
cannot help); anything else msal reports (429 / ``temporarily_unavailable`` / unknown) and
``MsalServiceError`` (a 5xx) or connection failures -> ``RetryableError``. After a 5xx msal replays
the same error for 5 s without calling the server, so those carry ``retry_after`` >= 5 s.

Each token obtained (its expiry) and each failure to get one is noted in ``health`` when the
composition gives one (the system's ``bridge.systems.health.SystemHealth``: ``GET /api/systems``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import msal
import requests

from bridge.core.errors import ConfigError, RetryableError
from bridge.systems.health import SystemHealth

# OAuth error codes that mean our configuration is wrong (RFC 6749 5.2 and Entra's additions).
_CONFIG_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "invalid_request",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_resource",
    }
)
MSAL_REPLAY_SECONDS = 5.0  # msal's own throttle window after a 5xx


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without verifying it."""
    # Unverified on purpose: the bridge only reads its own access token (its oid, its expiry), just
    # received from the authority over verified TLS; the resource (Dataverse, F&O) is the one that
    # verifies the signature. Never use this for a token somebody sent us.
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ConfigError(f"the token is not a JWT: {exc}") from exc
    return claims


class TokenProvider:
    """Tokens for one resource scope (e.g. ``https://org.crm.dynamics.com/.default``)."""

    def __init__(
        self,
        authority: str,
        client_id: str,
        client_secret: str,
        scope: str,
        *,
        ca_file: str | None = None,
        app_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret  # never logged, never in repr
        self.scope = scope
        self._ca_file = ca_file
        self._factory = app_factory or msal.ConfidentialClientApplication
        self._app: Any = None
        self._lock = threading.Lock()  # msal app creation happens in worker threads
        self._kept: tuple[str, float] | None = None  # token, reused until this time.monotonic()
        self._generation = 0  # bumped by refresh: an answer from before it is not kept
        self.health: SystemHealth | None = None  # the token state shown per system (set by the composition)

    def __repr__(self) -> str:
        return (
            f"TokenProvider(authority={self.authority!r}, client_id={self.client_id!r}, scope={self.scope!r})"
        )

    def _session(self) -> requests.Session:
        session = requests.Session()
        # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE would override verify: ignore the environment.
        session.trust_env = False
        session.verify = self._ca_file or True
        return session

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                try:
                    self._app = self._factory(
                        self.client_id,
                        client_credential=self._secret,
                        authority=self.authority,
                        instance_discovery=False,
                        http_client=self._session(),
                    )
                except ValueError as exc:  # e.g. an http:// authority, or discovery answered garbage
                    raise ConfigError(f"token authority {self.authority}: {exc}") from exc
                except requests.RequestException as exc:
                    raise RetryableError(f"token authority unreachable: {exc}", system="entra") from exc
            return self._app

    def _acquire(self, fresh: bool, generation: int | None = None) -> str:
        try:
            token, expires_in = self._acquire_once(fresh, generation)
        except (ConfigError, RetryableError) as exc:
            if self.health is not None:
                self.health.token_failed(str(exc))
            raise
        if self.health is not None:
            self.health.token_acquired(time.time() + expires_in if expires_in else None)
        return token

    def _acquire_once(self, fresh: bool, generation: int | None) -> tuple[str, float | None]:
        try:
            app = self._application()
            if fresh:
                app.remove_tokens_for_client()
            result = app.acquire_token_for_client(scopes=[self.scope])
        except msal.exceptions.MsalServiceError as exc:
            raise RetryableError(
                f"token endpoint failed: {exc}", system="entra", retry_after=MSAL_REPLAY_SECONDS
            ) from exc
        except requests.RequestException as exc:
            raise RetryableError(
                f"token endpoint unreachable: {exc}", system="entra", retry_after=MSAL_REPLAY_SECONDS
            ) from exc
        if not isinstance(result, dict):
            raise RetryableError("token endpoint gave no answer", system="entra")
        if "access_token" in result:
            token = str(result["access_token"])
            expires_in = result.get("expires_in")
            if not isinstance(expires_in, int | float) or expires_in <= 0:
                return token, None
            if generation == self._generation:
                self._kept = (token, time.monotonic() + expires_in / 2)
            return token, float(expires_in)
        error = str(result.get("error", "unknown_error"))
        text = f"token request failed: {error}: {result.get('error_description', '')}".strip()
        if error in _CONFIG_ERRORS:
            raise ConfigError(text, field="client credentials")
        raise RetryableError(text, system="entra", code=error, retry_after=MSAL_REPLAY_SECONDS)

    async def token(self) -> str:
        """A valid access token: the one kept here, else from msal (its cache, else the authority)."""
        kept = self._kept
        if kept is not None and time.monotonic() < kept[1]:
            return kept[0]
        return await asyncio.to_thread(self._acquire, False, self._generation)

    async def refresh(self) -> str:
        """Drop cached tokens and get a new one (after a 401 from the resource)."""
        self._generation += 1
        self._kept = None
        return await asyncio.to_thread(self._acquire, True, self._generation)

    async def own_object_id(self) -> str:
        """The ``oid`` claim of our own token: the bridge's principal as F&O data events report it."""
        claims = decode_claims(await self.token())
        oid = claims.get("oid")
        if not isinstance(oid, str) or not oid:
            raise ConfigError("the access token has no 'oid' claim")
        return oid
