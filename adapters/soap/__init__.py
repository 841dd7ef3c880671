"""The declarative SOAP adapter (``adapter = "soap"`` with ``mapping = FILE``) and the
SOAP profiles shipped as mapping files (``adapter = "nav"``)."""

from __future__ import annotations

from collections.abc import Callable

from crm_bridge import AdapterSpec, hookimpl
from crm_bridge.declarative import register_declarative

from .adapter import CONFIG_SCHEMA, SECRETS, SoapAdapter


@hookimpl
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    register_declarative(
        register,
        "soap",
        SoapAdapter,
        CONFIG_SCHEMA,
        SECRETS,
        "any SOAP service described by a mapping file",
    )
