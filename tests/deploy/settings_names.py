"""What the deploy files set, checked against what the bridge accepts (bridge/settings.py) and what
docs/deploy.md says is not accepted yet."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from bridge.settings import QUEUE_BACKENDS, STATE_BACKENDS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PREFIX = "DUALWRITE_"


def is_setting(env_name: str) -> bool:
    """Whether ``DUALWRITE_A__B`` names a field of Settings (``a.b``), as pydantic-settings reads it."""
    if not env_name.startswith(PREFIX):
        return False
    model: type[BaseModel] = Settings
    parts = env_name.removeprefix(PREFIX).lower().split("__")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def not_yet_section() -> str:
    """The text of docs/deploy.md's "Not implemented yet" section."""
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    match = re.search(r"^## Not implemented yet\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "docs/deploy.md has no '## Not implemented yet' section"
    return match.group(1)


def unaccepted(env: dict[str, str]) -> list[str]:
    """The names and backend values in ``env`` that the bridge does not accept yet."""
    missing = [name for name in env if name.startswith(PREFIX) and not is_setting(name)]
    if env.get("DUALWRITE_QUEUE__BACKEND", "sqlite") not in QUEUE_BACKENDS:
        missing.append(f'backend = "{env["DUALWRITE_QUEUE__BACKEND"]}"')
    if env.get("DUALWRITE_STATE__BACKEND", "sqlite") not in STATE_BACKENDS:
        missing.append(f'backend = "{env["DUALWRITE_STATE__BACKEND"]}"')
    return missing


def assert_documented_as_pending(env: dict[str, str]) -> None:
    section = not_yet_section()
    undocumented = [item for item in unaccepted(env) if f"`{item}`" not in section]
    assert not undocumented, (
        f"set by a deploy file, not accepted by bridge/settings.py, not in docs/deploy.md: {undocumented}"
    )
