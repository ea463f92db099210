"""The webhook listener over a real aiohttp test server with a fake sink: test_handlers.py's fixtures,
shared with the attack tests."""

from tests.listeners.test_handlers import client, listener, mappings, rows, sink  # noqa: F401
