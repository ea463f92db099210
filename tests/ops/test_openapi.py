"""The OpenAPI document describes every route the app serves, and docs/operations.md names each one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.ops.conftest import BEARER, Ops

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def _document(ops: Ops) -> dict[str, Any]:
    resp = await ops.client.get("/api/openapi.json", headers=BEARER)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


def _served(ops: Ops) -> set[tuple[str, str]]:
    app = ops.client.server.app
    assert app is not None
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/") or path in ("/healthz", "/readyz"):
            served.add((route.method.lower(), path))
    return served


async def test_every_served_api_route_is_documented(ops: Ops) -> None:
    doc = await _document(ops)

    documented = {(m, p) for p, ops_ in doc["paths"].items() for m in ops_}
    assert doc["openapi"] == "3.1.0"
    assert documented == _served(ops) - {("head", p) for _, p in _served(ops)}


async def test_schemas_resolve_and_bodies_are_described(ops: Ops) -> None:
    doc = await _document(ops)

    names = set(doc["components"]["schemas"])
    for ref in _refs(doc["paths"]):
        assert ref.removeprefix("#/components/schemas/") in names, ref
    resume = doc["paths"]["/api/maps/{entity}/resume"]["post"]
    schema_name = resume["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    mode = doc["components"]["schemas"][schema_name]["properties"]["mode"]
    enum_name = mode["$ref"].rsplit("/", 1)[1]
    assert doc["components"]["schemas"][enum_name]["enum"] == ["catch-up", "skip-keep", "skip-discard"]
    assert "400" in resume["responses"] and "401" in resume["responses"] and "404" in resume["responses"]


async def test_bearer_scheme_and_public_routes(ops: Ops) -> None:
    doc = await _document(ops)

    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token",
    }
    assert {"bearerAuth": []} in doc["security"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/readyz"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/api/pause"]["post"]


async def test_operations_doc_names_every_route(ops: Ops) -> None:
    text = DOC.read_text(encoding="utf-8")
    doc = await _document(ops)

    for path, methods in doc["paths"].items():
        for method in methods:
            pattern = rf"{method.upper()} {re.escape(path)}(?![\w/{{])"
            assert re.search(pattern, text), f"docs/operations.md does not describe {method.upper()} {path}"
