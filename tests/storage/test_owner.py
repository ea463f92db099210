"""The owner id a bridge keeps in its data directory (the name on its queue leases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.errors import ConfigError
from bridge.storage.owner import OWNER_FILE, owner_id


def test_it_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    first = owner_id(tmp_path / "data")
    assert first and (tmp_path / "data" / OWNER_FILE).read_text().strip() == first
    assert owner_id(tmp_path / "data") == first
    assert [p.name for p in (tmp_path / "data").iterdir()] == [OWNER_FILE]  # no stray temporary file


def test_two_data_directories_are_two_owners(tmp_path: Path) -> None:
    assert owner_id(tmp_path / "a") != owner_id(tmp_path / "b")


def test_an_existing_id_wins(tmp_path: Path) -> None:
    (tmp_path / OWNER_FILE).write_text("replica-7\n")
    assert owner_id(tmp_path) == "replica-7"


@pytest.mark.parametrize("content", [b"", b"   \n", b"\xff\xfe\x00", b"x" * 300])
def test_an_unusable_file_is_a_config_error_that_says_what_to_do(tmp_path: Path, content: bytes) -> None:
    (tmp_path / OWNER_FILE).write_bytes(content)
    with pytest.raises(ConfigError, match="delete it"):
        owner_id(tmp_path)
