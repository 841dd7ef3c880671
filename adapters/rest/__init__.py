"""The declarative REST adapter (``adapter = "rest"`` with ``mapping = FILE``) and the
REST profiles shipped as mapping files (``adapter = "odoo"``, ``"erpnext"``...)."""

from __future__ import annotations

from collections.abc import Callable

from crm_bridge import AdapterSpec, hookimpl
from crm_bridge.declarative import register_declarative

from .adapter import CONFIG_SCHEMA, SECRETS, RestAdapter


@hookimpl
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    register_declarative(
        register,
        "rest",
        RestAdapter,
        CONFIG_SCHEMA,
        SECRETS,
        "any REST/JSON API described by a mapping file",
    )
