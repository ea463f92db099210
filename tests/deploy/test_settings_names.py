"""The helper the deploy tests lean on: it tells real settings from names the bridge would not read."""

from __future__ import annotations

from tests.deploy.settings_names import is_setting, unaccepted


def test_names_of_fields_and_nested_fields_are_settings() -> None:
    assert is_setting("DUALWRITE_CLIENT_SECRET")
    assert is_setting("DUALWRITE_CDS__URL")
    assert is_setting("DUALWRITE_SYNC__LEASE_S")


def test_unknown_and_mistyped_names_are_not() -> None:
    assert not is_setting("DUALWRITE_CDS_URL")  # one underscore: pydantic-settings ignores it
    assert not is_setting("DUALWRITE_SYNC__LEASE")
    assert not is_setting("DUALWRITE_CLIENT_SECRET__X")  # a plain field has no children
    assert not is_setting("CDS__URL")


def test_an_unknown_backend_is_unaccepted() -> None:
    assert unaccepted({"DUALWRITE_QUEUE__BACKEND": "sqlite"}) == []
    assert unaccepted({"DUALWRITE_STATE__BACKEND": "nosuch"}) == ['backend = "nosuch"']
