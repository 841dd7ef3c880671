"""Compute: call each plugin's ``compute`` hook on the snapshot, one at a time.

A plugin may return its frame lazily (a Polars LazyFrame over ``snapshot.scan``,
``sales()`` or ``sales_lines()``); it is collected here, within the plugin's time
limit, so the query reads only the columns it uses.

Plugins are called separately so that each gets its own settings and a
failing plugin is reported by name while the others go on.  Whatever a plugin
raises (``SystemExit`` and ``KeyboardInterrupt`` included) or a result that is
not a frame (``None`` included) rejects that plugin: it cannot end the run nor
pass for a plugin with nothing to say.
"""

from __future__ import annotations

import contextvars
import functools
import threading
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


class PluginTimeout(Exception):
    """A plugin's compute took longer than ``sync.plugin_timeout``."""


def _within(seconds: float | None, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a daemon thread; raise PluginTimeout if it is not done in time.

    A plugin stuck past its time is abandoned, not killed (Python threads cannot
    be): its thread ends with the process and its output is never used.
    """
    if seconds is None:
        return work()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    # The thread runs in a copy of the caller's context: the language in effect carries over.
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target,), name="crm-bridge-plugin", daemon=True
    )
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise PluginTimeout(f"did not finish within {seconds:g}s (sync.plugin_timeout)")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _collected(function: Callable[..., Any], **kwargs: Any) -> Any:
    """What ``function`` returns, with a LazyFrame run (so the plugin's time and
    trace line include its query)."""
    result = function(**kwargs)
    return result.collect() if isinstance(result, pl.LazyFrame) else result


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception in one line: Polars puts the whole query plan after the first
    line ("Resolved plan until failure: ..."), kilobytes that say nothing more."""
    text = str(exc)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if len(line) > limit:
        line = line[: limit - 3].rstrip() + "..."
    return f"raised {type(exc).__name__}" + (f": {line}" if line else "")


def compute(
    plugins: Plugins,
    snapshot: Snapshot,
    settings: Callable[[str], Mapping[str, Any]],
    timeout: float | None = None,
) -> list[PluginOutput]:
    outputs = []
    for name, function in plugins.compute_impls():
        started = time.perf_counter()
        collected = functools.partial(_collected, function)
        call = functools.partial(
            plugins.call, "compute", name, collected, snapshot=snapshot, settings=settings(name)
        )
        try:
            result = _within(timeout, call)
            error = None
            if not isinstance(result, pl.DataFrame):
                error = (
                    f"returned {type(result).__name__}, expected a polars DataFrame or LazyFrame"
                    " (return an empty frame for no values)"
                )
                result = None
        except PluginTimeout as exc:
            result, error = None, str(exc)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: a plugin's, not ours
            result, error = None, first_line(exc)
        outputs.append(PluginOutput(name, result, error, time.perf_counter() - started))
    return outputs
