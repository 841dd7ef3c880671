"""The declarative SOAP adapter (``adapter = "soap"`` with ``mapping = FILE``) and the
SOAP profiles shipped as mapping files (``adapter = "nav"``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crm_bridge.adapters.rest import profile_spec

from crm_bridge import AdapterSpec, hookimpl, mapping
from crm_bridge.errors import ConfigError

from .adapter import CONFIG_SCHEMA, SECRETS, SoapAdapter


def _generic(settings: Mapping[str, Any]) -> SoapAdapter:
    if "mapping" not in settings:
        raise ConfigError(
            "config key erp.mapping is missing: the soap adapter needs a mapping file",
            hint="set erp.mapping to a mapping file (docs/adapters.md) or use adapter = nav",
        )
    spec = mapping.load(settings["mapping"])
    if spec.protocol != "soap":
        raise ConfigError(f"mapping {spec.name} is a {spec.protocol} mapping, not soap")
    return SoapAdapter(spec, settings)


@hookimpl
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    register(
        AdapterSpec(
            "soap", _generic, CONFIG_SCHEMA, "any SOAP service described by a mapping file", SECRETS
        )
    )
    for name in sorted(mapping.profiles()):
        if mapping.load(name).protocol == "soap":
            register(profile_spec(name, "soap", SoapAdapter, CONFIG_SCHEMA))
