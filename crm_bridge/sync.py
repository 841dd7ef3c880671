"""One sync run: extract -> compute -> validate -> plan -> apply -> record.

Also the set-up every command shares: check the plugin settings, build the
adapter from the ``[erp]`` table.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_bridge import config as config_mod
from crm_bridge import i18n, mapping, shrink_guard
from crm_bridge.adapter import Adapter, AdapterSpec
from crm_bridge.apply import ApplyResult, apply, resume
from crm_bridge.compute import PluginOutput, compute
from crm_bridge.config import Config
from crm_bridge.errors import ConfigError, CrmBridgeWarning
from crm_bridge.extract import extract, read_back_keys
from crm_bridge.fields import Field, decode, encode
from crm_bridge.plan import Plan, make_plan
from crm_bridge.plugin_manager import Plugins, check_known, unknown_plugins
from crm_bridge.state import RunLock, StateStore
from crm_bridge.table_cache import TableCache, utc_now
from crm_bridge.validate import Rejection, missing_columns, validate


@dataclass
class RunResult:
    run_id: int | None
    dry_run: bool
    status: str
    counts: dict[str, Any]
    plan: Plan
    rejections: list[Rejection] = field(default_factory=list)
    applied: ApplyResult | None = None
    seconds: float = 0.0
    # Why a failed run failed (redacted), for observers such as notify.
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return {"partial": 3, "failed": 1}.get(self.status, 0)


def adapter_spec(cfg: Config, plugins: Plugins) -> AdapterSpec:
    name = cfg.erp["adapter"]
    specs = plugins.adapters()
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfigError(
            i18n._(
                "config key erp.adapter: no adapter named {name!r} is installed and enabled"
            ).format(name=name),
            hint=i18n._("available adapters: {adapters}").format(adapters=known),
        )
    spec = specs[name]
    config_mod.validate(cfg.erp, {**spec.config_schema}, prefix=("erp",))
    cfg.secrets.update(str(cfg.erp[k]) for k in spec.secret_keys if cfg.erp.get(k))
    cfg.warn_plaintext_secrets(spec.secret_keys)
    return spec


def check_plugin_settings(cfg: Config, plugins: Plugins) -> None:
    """A settings table of no installed plugin is an error (a typo would be
    ignored); a name in ``[plugins] disabled`` that no plugin has is only a
    warning: an uninstalled plugin must not stop the nightly run."""
    settings = {k for k in cfg.data.get("plugins", {}) if k != "disabled"}
    check_known(plugins, settings)
    for name in unknown_plugins(plugins, cfg.disabled):
        warnings.warn(
            f"[plugins] disabled in {cfg.path} names {name!r}, which is not installed; "
            f"remove it with: crm-bridge plugins enable {name}",
            CrmBridgeWarning,
            stacklevel=2,
        )
    for name, schema in plugins.config_schemas().items():
        config_mod.validate(cfg.plugin_settings(name), schema, prefix=("plugins", name))


def connect(cfg: Config, plugins: Plugins) -> tuple[Adapter, dict[str, Field]]:
    """Validate everything the run depends on, then build the adapter."""
    check_plugin_settings(cfg, plugins)
    fields = plugins.fields()
    spec = adapter_spec(cfg, plugins)
    settings = cfg.erp
    ref = settings.get("mapping")
    if isinstance(ref, str) and ref not in mapping.profiles() and not Path(ref).is_absolute():
        settings["mapping"] = str(cfg.path.parent / ref)  # relative to the config file
    return spec.factory(settings), fields


def _previous(cfg: Config, state: StateStore | None) -> dict[str, dict[str, Any]]:
    if state:
        return state.applied()
    if not cfg.state_path.exists():
        return {}
    store = StateStore(cfg.state_path, readonly=True)
    try:
        return store.applied()
    finally:
        store.close()


def _count_writes(counts: dict[str, Any], applied: ApplyResult) -> None:
    """What the ERP confirmed of this run's own calls (resent ones counted apart)."""
    counts.update(
        written=applied.written,
        write_calls=applied.calls,
        rejected_records=len(applied.rejected),
        conflicts=dict(
            sorted(Counter(f for found in applied.conflicts.values() for f in found).items())
        ),
    )


def _overlay(current: dict[str, dict[str, Any]], cells: list[tuple[str, str, str, str]]) -> None:
    """Put confirmed cells (customer, field, old, new as JSON) into ``current``:
    what the ERP holds now for customers the next run may not read back."""
    for cid, name, _, new in cells:
        held = current.setdefault(cid, {})
        if new == "null":
            held.pop(name, None)
        else:
            held[name] = decode(new)


def _ran(outputs: list[PluginOutput], rejections: list[Rejection]) -> set[str]:
    """The fields of the plugins whose output was accepted: the columns they returned."""
    rejected = {r.plugin for r in rejections}
    return {
        column
        for out in outputs
        if out.frame is not None and out.plugin not in rejected
        for column in out.frame.columns
        if column != "customer_id"
    }


def provision(adapter: Adapter, fields: list[Field], cfg: Config) -> list[str]:
    """Create or update the field definitions, then, where the adapter can, their
    labels, help texts and choice names in each language the ERP has active (of
    ``[locale] languages`` when given); what changed.  An ERP that keeps one label per
    field here (Dolibarr) gets it in ``[locale] language``; Odoo's and ERPNext's
    definitions are English and their translations come from ``provision_translations``."""
    with i18n.using(cfg.language):
        changes = adapter.provision(fields)
    translate = getattr(adapter, "provision_translations", None)
    if translate is not None:
        changes += translate(fields, cfg.languages)
    return changes


def check_provisioning(
    adapter: Adapter, fields: dict[str, Field], cfg: Config, dry_run: bool
) -> dict[str, str]:
    """Fields whose definition the ERP lacks or holds out of date ({name: status}),
    when the adapter can tell.  With ``[sync] auto_provision`` a real run
    provisions them first (and returns none); otherwise they are returned, to be
    left out of the writes: an ERP such as Tryton refuses a customer's whole
    value set when one key is undefined."""
    status_of = getattr(adapter, "field_status", None)
    if status_of is None or not fields:
        return {}
    status: dict[str, str] = status_of(list(fields.values()))
    if not status:
        return {}
    names = ", ".join(sorted(status))
    if cfg.auto_provision and not dry_run:
        provision(adapter, [fields[n] for n in sorted(status)], cfg)
        return {}
    if cfg.auto_provision:
        warnings.warn(
            f"fields not provisioned or out of date in the ERP: {names}; the real run "
            "provisions them first ([sync] auto_provision)",
            CrmBridgeWarning,
            stacklevel=2,
        )
        return {}
    owners = ", ".join(sorted({fields[n].owner or "?" for n in status}))
    warnings.warn(
        f"fields not provisioned or out of date in the ERP, left out of the writes: {names} "
        f"(plugin {owners}); run crm-bridge fields provision, or set [sync] auto_provision "
        "= true",
        CrmBridgeWarning,
        stacklevel=2,
    )
    return status


def sync(
    cfg: Config,
    plugins: Plugins,
    dry_run: bool = False,
    on_page: Callable[[str, int], None] | None = None,
    on_call: Callable[[int], None] | None = None,
    full: bool = False,
    allow_shrink: bool = False,
) -> RunResult:
    """One run; a real run holds the state store's lock from start to end.

    ``full`` reads every table in full instead of what changed since the last run;
    ``allow_shrink`` lets a run through that reads far fewer records than the last.
    """
    result = RunResult(None, dry_run, "running", {}, Plan())
    try:
        if dry_run:
            _sync(cfg, plugins, True, on_page, on_call, full, allow_shrink, result)
        else:
            with RunLock(cfg.state_path):
                _sync(cfg, plugins, False, on_page, on_call, full, allow_shrink, result)
    except (Exception, KeyboardInterrupt) as exc:
        result.status = "failed"
        result.error = cfg.redact(f"{type(exc).__name__}: {exc}")[:500]
        try:
            plugins.broadcast("after_sync", result=result, config=cfg)
        except Exception as observer:  # the run's own error is the one to report
            warnings.warn(
                f"an after_sync observer failed too: {type(observer).__name__}: {observer}",
                CrmBridgeWarning,
                stacklevel=2,
            )
        raise
    plugins.broadcast("after_sync", result=result, config=cfg)
    return result


def _sync(
    cfg: Config,
    plugins: Plugins,
    dry_run: bool,
    on_page: Callable[[str, int], None] | None,
    on_call: Callable[[int], None] | None,
    full: bool,
    allow_shrink: bool,
    result: RunResult,
) -> RunResult:
    """Fills ``result`` (started by ``sync``) as it goes, so a failure's observers
    see the run id and the counts so far."""
    started = time.perf_counter()
    adapter, fields = connect(cfg, plugins)
    state = None if dry_run else StateStore(cfg.state_path)
    run_id = state.start_run(dry_run) if state else None
    result.run_id = run_id
    counts: dict[str, Any] = result.counts
    applied = ApplyResult()
    try:
        unprovisioned = check_provisioning(adapter, fields, cfg, dry_run)
        resumed = resume(adapter, state, run_id) if state and run_id is not None else None
        counts.update(
            resumed_calls=resumed.calls if resumed else 0,
            resumed_customers=resumed.written if resumed else 0,
        )
        cache = TableCache.of(cfg)
        now = utc_now()
        cached = None if full else cache.load(cfg.full_refresh_days, now)
        if cached and resumed:
            _overlay(cached.current, resumed.cells)
        fetched: Counter[str] = Counter()

        def counting(table: str, rows: int) -> None:
            fetched[table] += rows
            if on_page:
                on_page(table, rows)

        snapshot, tables = extract(adapter, cfg.as_of, counting, cached, now, cfg.quality)
        shrink_guard.guard(cfg, state, snapshot, allow_shrink)
        held = read_back_keys(snapshot.current, tables.current_frames, fields)
        snapshot.hold(held, fields)
        snapshot.previous = _previous(cfg, state)
        schemas = plugins.config_schemas()
        with i18n.using(cfg.language):  # the language of the texts plugins write
            outputs = compute(
                plugins,
                snapshot,
                lambda name: config_mod.with_defaults(cfg.plugin_settings(name), schemas.get(name)),
                cfg.plugin_timeout,
            )
        known = snapshot.customers["customer_id"]
        desired, rejections = validate(outputs, fields, known)
        desired = desired.drop(unprovisioned)  # not provisioned: not written, not cleared
        missing = missing_columns(outputs, fields, rejections)
        for plugin, names in missing.items():
            warnings.warn(
                f"plugin {plugin!r} returned no column for its declared field(s) "
                f"{', '.join(names)}: left as the ERP holds them",
                CrmBridgeWarning,
                stacklevel=2,
            )
        plan = make_plan(
            desired,
            held,
            fields,
            snapshot.previous,
            cfg.keep_edited_fields,
            ran=_ran(outputs, rejections) - set(unprovisioned),
            customers=known,
            reread=tables.reread,
        )
        if state and run_id is not None:
            state.remember(plan.already_there)
            state.record_edits(
                ((c, f, encode(was), encode(found)) for c, f, was, found in plan.drift), run_id
            )
        counts.update(
            {
                "read": snapshot.counts(),
                "fetched": dict(fetched),
                "incremental": sorted(tables.read_since),
                "planned_customers": plan.customers,
                "planned_cells": plan.cells,
                "cleared_cells": plan.cleared,
                "held_back_cells": plan.held_back,
                "per_field": plan.per_field(),
                "plugin_seconds": {o.plugin: round(o.seconds, 3) for o in outputs},
                "rejected_plugins": len(rejections),
                "plugin_rejections": [r.as_dict() for r in rejections],
                "missing_columns": missing,
                "unprovisioned": dict(sorted(unprovisioned.items())),
                "quarantined": snapshot.quarantined,
                "drift": dict(sorted(Counter(f for _, f, _, _ in plan.drift).items())),
            }
        )
        plugins.broadcast("before_apply", plan=plan, dry_run=dry_run)
        result.status, result.plan, result.rejections = "ok", plan, rejections
        if state and run_id is not None:
            result.applied = apply(
                plan,
                adapter,
                state,
                run_id,
                cfg.batch_size,
                on_call,
                cfg.max_error_rate,
                applied,
            )
        if rejections or any(a and a.rejected for a in (result.applied, resumed)):
            result.status = "partial"
        result.seconds = time.perf_counter() - started
        counts["seconds"] = round(result.seconds, 3)
        if state and run_id is not None:
            _count_writes(counts, applied)
            _overlay(tables.values_as_rows(), applied.cells)  # read back before these writes
            cache.save(tables)  # the next run reads only what changes
            state.finish_run(run_id, result.status, counts)
            state.prune(cfg.retention_days)
    except BaseException as exc:
        if state and run_id is not None:
            _count_writes(counts, applied)
            counts["seconds"] = round(time.perf_counter() - started, 3)
            state.finish_run(run_id, "failed", counts, cfg.redact(str(exc))[:500])
        raise
    finally:
        adapter.close()
        if state:
            state.close()
    return result
