"""The Tryton adapter plugin: the ``tryton`` adapter and the ``demo`` command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from crm_bridge import AdapterSpec, hookimpl

from .adapter import CONFIG_SCHEMA, TrytonAdapter


def _factory(settings: Mapping[str, Any]) -> TrytonAdapter:
    return TrytonAdapter(settings)


@hookimpl
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    register(
        AdapterSpec(
            "tryton",
            _factory,
            CONFIG_SCHEMA,
            "Tryton over JSON-RPC, values in the crm_bridge module's CRM tab",
            capabilities=TrytonAdapter.capabilities,
        )
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .demo import demo

    cli.add_command(demo)
