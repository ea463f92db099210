"""Point a containerised bridge at a containerised sandbox (deploy/compose.yaml only; standard library).

    python sandbox_link.py env INFO_FILE            print ``export DUALWRITE_…=…`` lines for ``eval``
    python sandbox_link.py fno-endpoint INFO_FILE URL
                                                    bind the emulated F&O's data events to URL

The sandbox writes its URLs, CA and generated credentials to its ``--info-file`` (docs/sandbox.md);
the replicas read them from the volume they share with it instead of having them copied into the
compose file. Against real systems none of this is used: the settings come from the environment.
"""

from __future__ import annotations

import json
import os
import shlex
import ssl
import sys
import urllib.request
from typing import Any

ENDPOINT_NAME = "dualwrite bridge"


def read_info(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        info: dict[str, Any] = json.load(fh)
    return info


def settings_env(info: dict[str, Any]) -> dict[str, str]:
    """The bridge's settings (docs/configuration.md names) that come from the sandbox."""
    return {
        "DUALWRITE_CDS__URL": info["cds_url"],
        "DUALWRITE_CDS__SCOPE": info["cds_scope"],
        "DUALWRITE_SCM__URL": info["scm_url"],
        "DUALWRITE_SCM__SCOPE": info["scm_scope"],
        "DUALWRITE_AUTH__AUTHORITY": info["authority"],
        "DUALWRITE_AUTH__CLIENT_ID": info["client_id"],
        "DUALWRITE_AUTH__CA_FILE": info["ca_file"],
        "DUALWRITE_CLIENT_SECRET": info["client_secret"],
    }


def _request(info: dict[str, Any], method: str, url: str, body: Any = None) -> Any:
    context = ssl.create_default_context(cafile=info["ca_file"])  # the sandbox's CA; never unverified
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header(info.get("admin_header", "x-sandbox-admin-key"), info["admin_key"])
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.load(response)


def bind_fno_endpoint(info: dict[str, Any], url: str, key: str) -> bool:
    """Bind every data event to the bridge's ``/webhooks/scm`` (idempotent: False if already bound)."""
    endpoints = f"{info['scm_admin_url']}/dataevents/endpoints"
    if any(e.get("url") == url for e in _request(info, "GET", endpoints)):
        return False
    body = {"name": ENDPOINT_NAME, "url": url, "headers": {"x-dualwrite-key": key}}
    _request(info, "POST", endpoints, body)
    return True


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "env":
        for name, value in settings_env(read_info(argv[1])).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if len(argv) == 3 and argv[0] == "fno-endpoint":
        key = os.environ.get("DUALWRITE_SCM_WEBHOOK_KEY", "").split(",")[0].strip()
        if not key:
            print("sandbox_link: set DUALWRITE_SCM_WEBHOOK_KEY", file=sys.stderr)
            return 2
        added = bind_fno_endpoint(read_info(argv[1]), argv[2], key)
        print(f"F&O data events -> {argv[2]}" + ("" if added else " (already bound)"))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
