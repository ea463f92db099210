"""The end-to-end suite's fixtures (the running bridge between both emulators, ``env``)."""

from tests.e2e.conftest import env, sandbox_config, sync_settings, webhook_mode  # noqa: F401
