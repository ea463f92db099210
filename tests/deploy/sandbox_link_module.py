"""deploy/sandbox_link.py, imported by path (deploy/ is not a package: the file is mounted into the
containers and run with the image's interpreter)."""

from __future__ import annotations

import importlib.util

from tests.deploy.settings_names import DEPLOY

_spec = importlib.util.spec_from_file_location("sandbox_link", DEPLOY / "sandbox_link.py")
assert _spec is not None and _spec.loader is not None
sandbox_link = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sandbox_link)
