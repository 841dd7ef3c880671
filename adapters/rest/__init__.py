"""The declarative REST adapter (``adapter = "rest"`` with ``mapping = FILE``) and the
REST profiles shipped as mapping files (``adapter = "odoo"``, ``"erpnext"``...)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crm_bridge import AdapterSpec, hookimpl, mapping
from crm_bridge.declarative import capabilities
from crm_bridge.errors import ConfigError

from .adapter import CONFIG_SCHEMA, SECRETS, RestAdapter


def _generic(settings: Mapping[str, Any]) -> RestAdapter:
    if "mapping" not in settings:
        raise ConfigError(
            "config key erp.mapping is missing: the rest adapter needs a mapping file",
            hint=f"set erp.mapping to a file or a profile: {', '.join(sorted(mapping.profiles()))}",
        )
    spec = mapping.load(settings["mapping"])
    if spec.protocol != "rest":
        raise ConfigError(f"mapping {spec.name} is a {spec.protocol} mapping, not rest")
    return RestAdapter(spec, settings)


def profile_spec(
    name: str, protocol: str, make: Callable[..., Any], schema: Mapping[str, Any]
) -> AdapterSpec:
    """The adapter spec of a shipped profile: its mapping and its required settings."""
    spec = mapping.load(name)
    required = ["adapter", *spec.data.get("settings", {}).get("required", ["url"])]

    def factory(settings: Mapping[str, Any]) -> Any:
        return make(spec, settings)

    return AdapterSpec(
        name,
        factory,
        {**schema, "required": required},
        f"{spec.data.get('title', name)} ({protocol} profile, docs/{spec.data.get('docs', '')})",
        SECRETS,
        capabilities(spec),
    )


@hookimpl
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    register(
        AdapterSpec(
            "rest",
            _generic,
            CONFIG_SCHEMA,
            "any REST/JSON API described by a mapping file",
            SECRETS,
        )
    )
    for name in sorted(mapping.profiles()):
        if mapping.load(name).protocol == "rest":
            register(profile_spec(name, "rest", RestAdapter, CONFIG_SCHEMA))
