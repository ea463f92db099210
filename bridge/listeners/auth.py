"""Authentication of inbound webhook calls by a shared secret (constant-time comparison).

One ``SharedKeyAuth`` covers every way both systems send a credential:
- Dataverse WebhookKey (authtype 4): ``?code=VALUE`` -> ``query_param="code"``;
- Dataverse HttpHeader (5) / HttpQueryString (6): a named header / query parameter;
- F&O: the endpoint's header (``x-dualwrite-key``) or a ``code`` query parameter in its URL.
Several secrets may be valid at once (rotation): every configured one is accepted.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from bridge.core.errors import AuthError, ConfigError


class SharedKeyAuth:
    def __init__(
        self,
        secrets: Iterable[str],
        *,
        header: str | None = "x-dualwrite-key",
        query_param: str | None = "code",
    ) -> None:
        self._secrets = [s.encode() for s in secrets if s]
        if not self._secrets:
            raise ConfigError("a webhook needs at least one non-empty secret", field="secret")
        if header is None and query_param is None:
            raise ConfigError("a webhook secret needs a header or a query parameter to travel in")
        self.header = header.lower() if header else None
        self.query_param = query_param

    def __repr__(self) -> str:  # never show the secrets
        return f"SharedKeyAuth(header={self.header!r}, query_param={self.query_param!r})"

    def _matches(self, offered: str | None) -> bool:
        if offered is None:
            return False
        # aiohttp hands over header bytes that are not UTF-8 as lone surrogates: encoded as they
        # came they simply match no secret (a plain 401), where a strict encode() raised (a 500).
        given = offered.encode("utf-8", "surrogatepass")
        ok = False
        for secret in self._secrets:  # no early exit: timing does not tell which secret matched
            ok |= hmac.compare_digest(given, secret)
        return ok

    def check(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Raise ``AuthError`` unless the header or the query parameter carries a valid secret."""
        offered_header = None
        if self.header is not None:
            offered_header = next((v for k, v in headers.items() if k.lower() == self.header), None)
        offered_query = query.get(self.query_param) if self.query_param else None
        if not (self._matches(offered_header) or self._matches(offered_query)):
            raise AuthError("missing or invalid webhook credential")
