"""A separate dashboard password (DUALWRITE_ADMIN_PASSWORD) replaces the token at the login page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bridge.app import Bridge
from bridge.demo import demo_settings


async def test_the_login_takes_the_configured_password_and_not_the_token(
    sandbox: Any, tmp_path: Path
) -> None:
    settings = demo_settings(sandbox.info, host="127.0.0.1", port=0, data_dir=tmp_path / "bridge")
    settings.admin_password = SecretStr("correct horse battery")
    async with Bridge(settings) as bridge, aiohttp.ClientSession() as http:

        async def login(password: str) -> int:
            async with http.post(
                f"{bridge.url}/login", data={"password": password}, allow_redirects=False
            ) as resp:
                return resp.status

        assert await login(settings.admin_token.get_secret_value()) == 401
        assert await login("correct horse battery") == 303  # signed in, redirected to the dashboard
