"""deploy/constraints.txt pins every product dependency (and the postgres extra the image installs) to a
version pyproject.toml allows."""

from __future__ import annotations

import tomllib
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.settings_names import DEPLOY, ROOT


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (DEPLOY / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def test_every_product_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    project = _project()
    for spec in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not installed on this platform (the image's is Linux too)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but deploy/constraints.txt does not pin it"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject.toml's {requirement.specifier}: "
            "run deploy/freeze-constraints.sh"
        )


def test_the_pins_are_of_the_product_alone() -> None:
    pins = _pins()
    assert "dualwrite" not in pins
    extras = _project()["optional-dependencies"]
    for spec in extras["sandbox"]:
        # The emulators' libraries stay out: the production image has none of them.
        assert canonicalize_name(Requirement(spec).name) not in pins
