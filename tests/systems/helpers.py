"""Shared by the client tests: the bridge's token provider for one sandbox system."""

from __future__ import annotations

from typing import Any

from bridge.systems.auth import TokenProvider


def tokens_for(info: Any, scope: str) -> TokenProvider:
    """The bridge's client credentials against the sandbox authority, trusting its CA file."""
    return TokenProvider(info.authority, info.client_id, info.client_secret, scope, ca_file=info.ca_file)
