"""The schema package keeps the module's public names (other parts import them from it)."""

from __future__ import annotations

from pathlib import Path

import bridge.sandbox.schema as schema

# Every public name bridge/sandbox/schema.py had before it became a package.
NAMES_BEFORE_THE_SPLIT = {
    *("Kind", "Column", "Table", "table_by_set"),
    *("S", "M", "I", "D", "B", "DT", "G"),
    *("DATAVERSE_TABLES", "DATAVERSE_REGISTRATION_TABLES", "DV_PAYMENT_METHOD", "DV_WAREHOUSE_TYPE"),
    *("FNO_TABLES", "FO_NOYES", "FO_WAREHOUSE_TYPE", "FO_PAYMENT_METHOD"),
}


def test_every_name_of_the_old_module_is_importable_from_the_package() -> None:
    assert set(schema.__all__) >= NAMES_BEFORE_THE_SPLIT
    assert all(hasattr(schema, name) for name in NAMES_BEFORE_THE_SPLIT)


def test_every_module_of_the_package_is_small() -> None:
    for module in Path(schema.__file__).parent.glob("*.py"):
        assert len(module.read_text(encoding="utf-8").splitlines()) < 500, module.name
