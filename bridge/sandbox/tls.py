"""The sandbox's own certificate authority, kept on disk, and TLS contexts for its servers and clients.

msal accepts only an ``https`` authority, so the emulators serve HTTPS. The CA is created once per
state directory and reused on every start, so a client configured with ``ca.pem`` keeps working
across restarts; the server certificate is issued afresh at each start (it is cheap and names the
chosen host). Clients are told to trust ``ca.pem``; nothing here turns verification off.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

import trustme

DEFAULT_STATE_DIR = Path(".dualwrite") / "sandbox"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"


def _write_private(path: Path, data: bytes) -> None:
    # The CA key signs certificates every local client trusts: readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_or_create_ca(state_dir: Path) -> trustme.CA:
    """The CA kept in ``state_dir`` (``ca.pem`` + ``ca-key.pem``), created on first use."""
    state_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = state_dir / CA_FILE, state_dir / CA_KEY_FILE
    if cert_path.is_file() and key_path.is_file():
        return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    ca = trustme.CA(organization_name="dualwrite sandbox")
    _write_private(key_path, ca.private_key_pem.bytes())
    cert_path.write_bytes(ca.cert_pem.bytes())
    return ca


def _identities(hosts: Iterable[str]) -> list[str]:
    names: list[str] = []
    for host in ("127.0.0.1", "localhost", *hosts):
        if host in ("", "0.0.0.0", "::"):  # bind-all addresses are not names a client connects to
            continue
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            host = host.lower()
        if host not in names:
            names.append(host)
    return names


class SandboxTLS:
    """CA + server certificate for the sandbox's hosts, and the SSL contexts built from them."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR, hosts: Iterable[str] = ()) -> None:
        self.state_dir = Path(state_dir)
        self.ca = load_or_create_ca(self.state_dir)
        self.hosts = _identities(hosts)
        self._leaf = self.ca.issue_cert(*self.hosts, common_name=self.hosts[0])

    @property
    def ca_file(self) -> Path:
        return self.state_dir / CA_FILE

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(ctx)
        return ctx

    def client_context(self, *, system_roots: bool = True) -> ssl.SSLContext:
        """Verifying client context trusting the sandbox CA (and, by default, the system roots too,
        so one session can call both the sandbox and real HTTPS endpoints)."""
        ctx = ssl.create_default_context() if system_roots else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if not system_roots:
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.ca.configure_trust(ctx)
        return ctx
