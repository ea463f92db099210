"""Builds the OpenAPI 3.1 document of the operations API from its route specs and pydantic models."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bridge.ops.models import ErrorView

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    response: type[BaseModel]
    tag: str = "maps"
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    public: bool = False
    errors: dict[int, str] = field(default_factory=dict)
    also: dict[int, str] = field(default_factory=dict)  # other statuses with the 200 body's shape
    description: str = ""


_COMMON_ERRORS = {
    401: "Not authenticated (bearer token or session cookie needed)",
    403: "Cookie session without a valid X-CSRF-Token on a state-changing call",
}
_PATH_PARAM_DOC = {
    "entity": "Map name (mappings/<entity>.yaml), e.g. warehouse",
    "id": "Failure id (from GET /api/failures)",
    "rule_id": "Alert rule id (from GET /api/alerts)",
    "conflict_id": "Parked conflict id (from GET /api/conflicts)",
}
_INTEGER_PARAMS = {"id", "rule_id", "conflict_id"}


def build_openapi(specs: Sequence[RouteSpec], *, version: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorView, "serialization")]
    for spec in specs:
        models.append((spec.response, "serialization"))
        if spec.body is not None:
            models.append((spec.body, "validation"))
    keys, defs = models_json_schema(list(dict.fromkeys(models)), ref_template="#/components/schemas/{model}")

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(keys[(model, mode)])

    error_content = {"application/json": {"schema": ref(ErrorView, "serialization")}}
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        op: dict[str, Any] = {
            "operationId": spec.handler.__name__.lstrip("_"),
            "summary": spec.summary,
            "tags": [spec.tag],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": ref(spec.response, "serialization")}},
                }
            },
        }
        for status, text in spec.also.items():
            op["responses"][str(status)] = {
                "description": text,
                "content": {"application/json": {"schema": ref(spec.response, "serialization")}},
            }
        if spec.description:
            op["description"] = spec.description
        params = [_path_param(name) for name in _PARAM.findall(spec.path)]
        if spec.query is not None:
            params += _query_params(spec.query)
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {
                "required": spec.body_required,
                "content": {"application/json": {"schema": ref(spec.body, "validation")}},
            }
        errors = dict(spec.errors)
        if spec.body is not None or spec.query is not None or "{" in spec.path:
            errors.setdefault(400, "Invalid input; the message names the problem")
        if spec.public:
            op["security"] = []
        else:
            errors.update(_COMMON_ERRORS)
        for status, text in sorted(errors.items()):
            op["responses"][str(status)] = {"description": text, "content": error_content}
        paths.setdefault(spec.path, {})[spec.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dualwrite operations API",
            "version": version,
            "description": "Health, figures and control of the dualwrite bridge. See docs/operations.md.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The admin token"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "dualwrite_session"},
            },
        },
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    }


def _path_param(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"} if name in _INTEGER_PARAMS else {"type": "string"}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": _PATH_PARAM_DOC.get(name, name),
    }


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A query parameter's schema with its ``#/$defs/..`` references (enums) written in place: a
    parameter stands alone, outside the components."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    out: list[dict[str, Any]] = []
    for name, raw in schema.get("properties", {}).items():
        prop = _inline(raw, defs)
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out
