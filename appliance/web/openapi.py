"""Build the OpenAPI 3.1 document from the app's route table and the API's operation registry."""
from __future__ import annotations

import inspect
import re

from appliance import __version__

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}, "path": {"type": "string"}}
PREFIX = "/api/v1"


def _path_and_params(rule: str) -> tuple[str, list[dict]]:
    params = []

    def repl(m):
        conv, name = m.group(1) or "string", m.group(2)
        params.append({"name": name, "in": "path", "required": True, "schema": _TYPES.get(conv, {"type": "string"})})
        return "{" + name + "}"

    return _CONVERTER.sub(repl, rule), params


def _security(roles) -> list[dict]:
    if "anonymous" in roles:
        return []
    return [{"cookieAuth": []}, {"bearerAuth": []}]


def build_document(app, operations: dict, error_schema: dict) -> dict:
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        op = operations.get(rule.endpoint)
        roles = tuple(sorted(getattr(view, "required_roles", ())))
        path, params = _path_and_params(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            summary = op.summary if op else (inspect.getdoc(view) or rule.endpoint).splitlines()[0]
            status = str(op.status if op else 200)
            entry = {
                "operationId": rule.endpoint.replace(".", "_"),
                "summary": summary,
                "tags": list(op.tags) if op and op.tags else [rule.endpoint.split(".")[0]],
                "x-roles": list(roles),
                "security": _security(roles),
                "responses": {
                    status: {"description": "Success", "content": {"application/json": {
                        "schema": op.response if op else {"type": "object"}}}},
                    "default": {"description": "Error", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}}},
                },
            }
            if params:
                entry["parameters"] = params
            if op and op.request:
                entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.request}}}
            elif op and op.upload:
                entry["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": [op.upload],
                    "properties": {op.upload: {"type": "string", "contentMediaType": "application/octet-stream"}}}}}}
            if method in ("POST", "PUT", "PATCH", "DELETE") and "anonymous" not in roles:
                entry.setdefault("parameters", []).append({
                    "name": "X-CSRF-Token", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "Required with cookie sign-in (the page's csrf-token meta); not with a bearer token."})
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Classroom Edge API", "version": __version__,
                 "description": "The box's JSON API. Roles: student, teacher, admin (x-roles on each operation)."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": error_schema},
            "securitySchemes": {
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "ce_session"},
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An admin-issued API token."},
            },
        },
    }
