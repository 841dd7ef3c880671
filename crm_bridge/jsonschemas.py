"""Access to the JSON Schemas shipped in ``schemas/`` (installed as ``crm_bridge.schemas``)."""

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """Return the schema ``name`` (for example ``"config"`` or ``"records/invoice"``)."""
    path = resources.files("crm_bridge.schemas").joinpath(f"{name}.schema.json")
    schema: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return schema
