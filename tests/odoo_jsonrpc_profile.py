"""``adapters/profiles/odoo_jsonrpc.toml`` is ``odoo.toml`` with every JSON-2 call
wrapped in Odoo's external JSON-RPC envelope.  ``python -m tests.odoo_jsonrpc_profile``
rewrites it after a change to ``odoo.toml``; a test checks the two are in step."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

PROFILES = Path(__file__).parent.parent / "adapters" / "profiles"
POSITIONAL = {
    "search_read": ["domain"],
    "write": ["ids", "vals"],
    "create": ["vals_list"],
    "unlink": ["ids"],
    "context_get": [],
}
HEADER = """Odoo 17-18 external JSON-RPC API (/jsonrpc, service "object", execute_kw):
the same models, fields and custom fields as the odoo profile (Odoo 19+ JSON-2),
each call wrapped in a JSON-RPC envelope. Login with common.login gives the uid
({token}); the password (or an API key) goes with every call. Errors come as
HTTP 200 with an "error" member. Generated from odoo.toml by
tests/odoo_jsonrpc_profile.py: do not edit by hand."""


def _call(request: dict[str, Any]) -> dict[str, Any]:
    model, method = re.fullmatch(r"/json/2/([\w.]+)/(\w+)", request["path"]).groups()  # type: ignore[union-attr]
    kwargs = dict(request.get("body", {}))
    args = [kwargs.pop(k) for k in POSITIONAL[method] if k in kwargs]
    envelope = {
        "service": "object",
        "method": "execute_kw",
        "args": ["{database}", "{token}", "{password}", model, method, args, kwargs],
    }
    return {
        "method": "POST",
        "path": "/jsonrpc",
        "body": {"jsonrpc": "2.0", "method": "call", "id": 1, "params": envelope},
        "records": "result",
    }


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        if str(node.get("path", "")).startswith("/json/2/"):
            return _call(node)
        out = {k: _walk(v) for k, v in node.items()}
        if "domain" in out and "request" not in node and isinstance(out["domain"], list):
            out["domain_path"] = "params.args.5.0"  # an incremental rule
        return out
    if isinstance(node, list):
        return [_walk(v) for v in node]
    return node


def convert(odoo: dict[str, Any]) -> dict[str, Any]:
    out = _walk(odoo)
    out["title"] = "Odoo (JSON-RPC)"
    out["settings"] = {"required": ["url", "database", "username", "password"]}
    out["auth"] = {
        "type": "session",
        "token": "result",
        "login": {
            "method": "POST",
            "path": "/jsonrpc",
            "body": {
                "jsonrpc": "2.0",
                "method": "call",
                "id": 1,
                "params": {
                    "service": "common",
                    "method": "login",
                    "args": ["{database}", "{username}", "{password}"],
                },
            },
        },
    }
    out["errors"] = {"path": "error", "message": "error.data.message"}
    for lookup in out["lookups"].values():
        lookup["path"] = "result." + lookup["path"]
    out["timezone"]["path"] = "result.tz"
    return out


def expected() -> dict[str, Any]:
    return convert(tomllib.loads((PROFILES / "odoo.toml").read_text("utf-8")))


if __name__ == "__main__":
    doc = tomlkit.document()
    for line in HEADER.splitlines():
        doc.add(tomlkit.comment(line))
    for key, value in expected().items():
        doc[key] = value
    (PROFILES / "odoo_jsonrpc.toml").write_text(tomlkit.dumps(doc), "utf-8")
