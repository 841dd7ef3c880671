"""Compute: call each plugin's ``compute`` hook on the snapshot, one at a time.

Plugins are called separately so that each gets its own settings and a
failing plugin is reported by name while the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from crm_bridge.plugin_manager import Plugins
from crm_bridge.snapshot import Snapshot


@dataclass
class PluginOutput:
    plugin: str
    frame: pl.DataFrame | None
    error: str | None
    seconds: float


def compute(
    plugins: Plugins, snapshot: Snapshot, settings: Callable[[str], Mapping[str, Any]]
) -> list[PluginOutput]:
    outputs = []
    for name, function in plugins.compute_impls():
        started = time.perf_counter()
        try:
            result = plugins.call(
                "compute", name, function, snapshot=snapshot, settings=settings(name)
            )
            error = None
            if result is not None and not isinstance(result, pl.DataFrame):
                error = f"returned {type(result).__name__}, expected a polars DataFrame"
                result = None
        except Exception as exc:
            result, error = None, f"raised {type(exc).__name__}: {exc}"
        outputs.append(PluginOutput(name, result, error, time.perf_counter() - started))
    return outputs
