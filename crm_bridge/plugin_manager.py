"""Loading plugins: one factory, entry points loaded lazily, an allow-list.

Built-in plugins and adapters are registered through the same entry-point
group (``crm_bridge``) as third-party ones.  ``CRM_BRIDGE_LOAD_PLUGINS``
(comma-separated names, empty for none) limits which entry points are imported,
so a plugin that crashes on import can still be listed and uninstalled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import pluggy

from crm_bridge import hookspecs
from crm_bridge.adapter import AdapterSpec
from crm_bridge.errors import ConfigError, PluginError
from crm_bridge.fields import Field
from crm_bridge.i18n import _

GROUP = "crm_bridge"
ALLOW_ENV = "CRM_BRIDGE_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    """What ``crm-bridge plugins list`` shows for one plugin."""

    name: str
    version: str | None
    distribution: str | None
    enabled: bool
    loaded: bool = False
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


def _allowed() -> set[str] | None:
    value = os.environ.get(ALLOW_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class Plugins:
    """The plugin manager of one process or test, plus what was found."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        # Called with one line per hook call when tracing (crm-bridge --verbose).
        self.trace: Callable[[str], None] | None = None

    def enable_tracing(self, write: Callable[[str], None]) -> None:
        """Report every hook call the core makes: one line each with the hook, the
        plugin, the wall time and a short summary of what it returned, never the
        arguments themselves (a plan is megabytes)."""
        self.trace = write

    def call(self, hook: str, plugin: str, function: Callable[..., Any], **kwargs: Any) -> Any:
        """Call one plugin's implementation of ``hook`` (traced when tracing is on)."""
        if self.trace is None:
            return function(**kwargs)
        started = time.perf_counter()
        outcome = "raised"
        try:
            result = function(**kwargs)
            outcome = summary(result)
            return result
        finally:
            took = time.perf_counter() - started
            self.trace(f"hook {hook} [{plugin}] {took:.3f}s -> {outcome}")

    def broadcast(self, hook: str, **kwargs: Any) -> None:
        """Call every plugin's ``hook`` (an observer hook: results ignored), in
        pluggy's order, each traced; an exception propagates as pluggy's would."""
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        for impl in reversed(impls):
            wanted = {k: v for k, v in kwargs.items() if k in impl.argnames}
            self.call(hook, impl.plugin_name, impl.function, **wanted)

    def register(self, plugin: Any, name: str, version: str | None = None) -> None:
        """Register an already-imported plugin object (tests, scaffolds)."""
        self.pm.register(plugin, name=name)
        self.info[name] = PluginInfo(name, version, None, enabled=True, loaded=True)
        self.info[name].hooks = self._hooks_of(plugin)

    def _hooks_of(self, plugin: Any) -> list[str]:
        return sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])

    def fields(self) -> dict[str, Field]:
        """All declared fields by name, each with its owner set; names are unique."""
        out: dict[str, Field] = {}
        for impl in self.pm.hook.declare_fields.get_hookimpls():
            declared: Any = self.call("declare_fields", impl.plugin_name, impl.function)
            for decl in declared or ():
                owned = replace(decl, owner=impl.plugin_name)
                if owned.name in out:
                    raise PluginError(
                        f"field {owned.name!r} is declared by both {out[owned.name].owner!r} "
                        f"and {impl.plugin_name!r}",
                        hint="disable one of the two plugins: crm-bridge plugins disable NAME",
                    )
                out[owned.name] = owned
        return out

    def config_schemas(self) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        for impl in self.pm.hook.config_schema.get_hookimpls():
            schema: Any = self.call("config_schema", impl.plugin_name, impl.function)
            if schema is not None:
                out[impl.plugin_name] = schema
        return out

    def adapters(self) -> dict[str, AdapterSpec]:
        found: dict[str, AdapterSpec] = {}

        def register(spec: AdapterSpec) -> None:
            found.setdefault(spec.name, spec)

        self.broadcast("register_adapters", register=register)
        return found

    def compute_impls(self) -> list[tuple[str, Any]]:
        """(plugin name, compute function) for each plugin that computes."""
        return [(i.plugin_name, i.function) for i in self.pm.hook.compute.get_hookimpls()]


def load_plugins(disabled: Collection[str] = ()) -> Plugins:
    """Return a fresh plugin manager with the installed, allowed, enabled plugins."""
    plugins = Plugins()
    allowed = _allowed()
    seen = set()
    for ep in metadata.entry_points(group=GROUP):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = ep.dist
        info = PluginInfo(
            ep.name,
            dist.version if dist else None,
            dist.metadata["Name"] if dist else None,
            enabled=ep.name not in disabled and (allowed is None or ep.name in allowed),
        )
        plugins.info[ep.name] = info
        if not info.enabled:
            continue
        try:
            module = ep.load()
            plugins.pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the host down
            info.error = f"{type(exc).__name__}: {exc}"
            continue
        info.loaded = True
        info.hooks = plugins._hooks_of(module)
    return plugins


def declared_fields(name: str) -> list[Field]:
    """The fields installed plugin ``name`` declares, enabled or not (to retire
    the fields of a disabled plugin): its entry point is loaded on its own."""
    for ep in metadata.entry_points(group=GROUP, name=name):
        alone = Plugins()
        try:
            alone.pm.register(ep.load(), name=name)
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} cannot be loaded to read its fields: {type(exc).__name__}: {exc}",
                hint="retire its fields by name: crm-bridge fields retire NAME...",
            ) from None
        return list(alone.fields().values())
    raise ConfigError(
        _("unknown plugin {name!r}").format(name=name),
        hint=_("it must still be installed to know its fields; see crm-bridge plugins list"),
    )


def summary(value: Any) -> str:
    """A few words on a hook's result, for the trace: its type and size."""
    if value is None:
        return "None"
    height = getattr(value, "height", None)
    if height is not None:  # a DataFrame
        return f"{type(value).__name__} {height}x{value.width}"
    if hasattr(value, "collect_schema"):  # a LazyFrame, before collection
        return "LazyFrame"
    if isinstance(value, Mapping | list | tuple | set):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def unknown_plugins(plugins: Plugins, names: Collection[str]) -> list[str]:
    """The names no installed plugin has."""
    return sorted(set(names) - set(plugins.info))


def check_known(plugins: Plugins, names: Collection[str]) -> None:
    """Refuse plugin names that no installed plugin has."""
    unknown = sorted(set(names) - set(plugins.info))
    if unknown:
        known = ", ".join(sorted(plugins.info)) or "none"
        raise ConfigError(
            _("unknown plugin {name!r}").format(name=unknown[0]),
            hint=_("installed plugins: {plugins}; see crm-bridge plugins list").format(
                plugins=known
            ),
        )
