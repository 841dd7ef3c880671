"""The ``crm-bridge`` command.

Exit codes: 0 ok (ERP records may have been set aside: see the run's counts), 1
error, 2 bad usage or config, 3 partial (some values or plugins were rejected; the
rest was written), 4 stopped before planning: the ERP served no customers or far
fewer records than the last successful run (README's table).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import click
import tomlkit
from rich.markup import escape

from crm_bridge import __version__, i18n
from crm_bridge import config as config_mod
from crm_bridge.console import (
    console,
    emit_json,
    err,
    log_events,
    plain_warnings,
    print_result,
    result_dict,
    sync_progress,
)
from crm_bridge.errors import ConfigError, CrmBridgeError, PluginError
from crm_bridge.fields import Field
from crm_bridge.i18n import _
from crm_bridge.plugin_manager import Plugins, check_known, declared_fields, load_plugins
from crm_bridge.state import RunLock, StateStore
from crm_bridge.sync import connect, provision, sync

from .starters import STARTERS

LANG_HELP = (
    f"Language of the output: {', '.join(i18n.LANGUAGES)} "
    "(default: [locale] language, else the environment's locale, else en)."
)


class App:
    """What every command shares: the plugins and, on demand, the config."""

    def __init__(self, config_path: str | None, plugins: Plugins) -> None:
        self.config_path = config_path
        self.plugins = plugins
        self._config: config_mod.Config | None = None
        self._local: config_mod.Config | None = None

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            self._config = config_mod.load(self.config_path)
        return self._config

    @property
    def local_config(self) -> config_mod.Config:
        """The config with ``${NAME}`` references left unresolved: for commands that
        read only local files (run history, the plugin list), which must work
        without the ERP's secret in the environment."""
        if self._config is not None:
            return self._config
        if self._local is None:
            self._local = config_mod.load(self.config_path, secrets=False)
        return self._local


def output_language(ctx: click.Context, strict: bool = True) -> str:
    """The language of the command's summaries and messages: the global ``--lang``,
    else ``[locale] language``, else the environment's locale, else English (resolved
    once per command line; ``strict=False``: a wrong ``--lang`` reads as English)."""
    root = ctx.find_root()
    option = root.params.get("language")
    if root.params.get("log_json"):
        return i18n.DEFAULT  # log lines are machine-read: English, whatever the language
    if not strict and option and not i18n.normalize(option):
        return i18n.DEFAULT
    if "crm_bridge.language" not in root.meta:
        try:
            path = root.params.get("config_path")
            configured = config_mod.load(path, secrets=False).language
        except CrmBridgeError:
            configured = None  # no (valid) config: its own error says so, in this language
        root.meta["crm_bridge.language"] = i18n.resolve(option, configured)
    return str(root.meta["crm_bridge.language"])


class Group(click.Group):
    """Turns crm-bridge errors into one clear message and an exit code, in the
    output language (``--log-json`` events stay English: they are machine-read)."""

    def invoke(self, ctx: click.Context) -> Any:
        def redact(text: str) -> str:
            app = ctx.find_object(App)
            return config_mod.redact(text, app._config.secrets if app and app._config else ())

        try:
            with plain_warnings(redact), i18n.using(output_language(ctx)):
                return super().invoke(ctx)
        except CrmBridgeError as exc:
            with i18n.using(output_language(ctx, strict=False)):
                self._print_error(ctx, exc, redact)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            raise  # the reader went away (| head): click exits quietly
        except KeyboardInterrupt:
            with i18n.using(output_language(ctx, strict=False)):
                err.print(_("Interrupted; the next run resumes from what the ERP holds."))
            ctx.exit(130)
        except Exception as exc:
            if os.environ.get("CRM_BRIDGE_TRACEBACK"):
                traceback.print_exc()
            message = redact(f"{type(exc).__name__}: {exc}")
            if log_events.enabled:
                log_events.emit("error", message=f"unexpected {message}", exit_code=1)
            else:
                with i18n.using(output_language(ctx, strict=False)):
                    error = _("unexpected {error}").format(error=escape(message))
                    word = _("Error:")
                    err.print(f"[red]{word}[/] {error}")
                    err.print(
                        _("Hint: rerun with CRM_BRIDGE_TRACEBACK=1 for details and report it.")
                    )
            ctx.exit(1)
        finally:
            # A reader that went away (| head -c1) shows here, where click turns it into
            # a quiet exit, not at interpreter exit as "Exception ignored ...".
            sys.stdout.flush()

    @staticmethod
    def _print_error(ctx: click.Context, exc: CrmBridgeError, redact: Any) -> None:
        if log_events.enabled:
            log_events.emit(
                "error",
                message=redact(str(exc)),
                hint=redact(exc.hint or ""),
                exit_code=exc.exit_code,
            )
        else:
            word = _("Error:")
            err.print(f"[red]{word}[/] {escape(redact(str(exc)))}")
            if exc.hint:
                err.print(_("Hint:") + f" {redact(exc.hint)}", markup=False)
        ctx.exit(exc.exit_code)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"crm-bridge {__version__}")
    loaded: Plugins = ctx.obj
    for info in sorted(loaded.info.values(), key=lambda i: i.name):
        state = "" if info.loaded else " (not loaded)"
        click.echo(f"  {info.name} {info.version or '-'} [{info.distribution or '-'}]{state}")
    ctx.exit()


@click.group(cls=Group)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show crm-bridge's version and every plugin's, then exit.",
)
@click.option(
    "--config",
    "config_path",
    envvar="CRM_BRIDGE_CONFIG",
    help="Config file (default: ./crm-bridge.toml).",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="One line per plugin hook call on stderr: hook, plugin, wall time, result size.",
)
@click.option(
    "--log-json",
    is_flag=True,
    help="Write warnings, errors, hook calls and the run's outcome to stderr as one JSON "
    "object per line (for log collectors; in English, whatever the language).",
)
@click.option("--lang", "language", metavar="LANG", help=LANG_HELP)
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, verbose: bool, log_json: bool, language: str | None
) -> None:
    """crm-bridge: CRM segmentation, loyalty and KPIs written back into your ERP."""
    log_events.enabled = log_json
    if verbose and log_json:
        ctx.obj.enable_tracing(lambda line: log_events.emit("hook", message=line))
    elif verbose:
        ctx.obj.enable_tracing(lambda line: err.out(line, highlight=False))
    ctx.obj = App(config_path, ctx.obj)


pass_app = click.make_pass_decorator(App)


def _global_lang() -> str | None:
    """The ``--lang`` given before the command (``crm-bridge --lang ru sync``)."""
    return click.get_current_context().find_root().params.get("language")


# What each profile's starter [erp] table holds besides url; the secret goes by env.
PROFILE_KEYS = {
    "tryton": ("database", "username", "password"),
    "odoo": ("database", "api_key"),
    "odoo_jsonrpc": ("database", "username", "password"),
    "erpnext": ("api_key", "api_secret"),
    "dolibarr": ("api_key",),
    "nav": ("company", "username", "password"),
    "rest": ("mapping", "api_key"),
    "soap": ("mapping", "username", "password"),
}
SECRET_KEYS = ("password", "api_key", "api_secret", "token")


@cli.command()
@click.option(
    "--profile",
    "--adapter",
    "profile",
    type=click.Choice(sorted(PROFILE_KEYS)),
    default="tryton",
    show_default=True,
    help="The ERP: a shipped profile, or rest/soap with your own --mapping.",
)
@click.option("--url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--database", default="tryton", show_default=True)
@click.option("--username", default="admin", show_default=True)
@click.option("--company", default="CRONUS", show_default=True, help="NAV / BC company.")
@click.option("--mapping", "mapping_file", default="mapping.toml", show_default=True)
@click.option(
    "--secret-env",
    "--password-env",
    "secret_env",
    default=None,
    help="Environment variable that holds the password or API key "
    "(default CRM_BRIDGE_ERP_PASSWORD, or CRM_BRIDGE_ERP_API_KEY).",
)
@click.option("--path", "path", type=click.Path(dir_okay=False), default=None)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
def init(
    ctx: click.Context,
    profile: str,
    url: str,
    database: str,
    username: str,
    company: str,
    mapping_file: str,
    secret_env: str | None,
    path: str | None,
    force: bool,
) -> None:
    """Write a starter config file for an ERP profile (non-interactive)."""
    app = ctx.find_object(App)
    target = Path(path or (app.config_path if app else None) or "crm-bridge.toml")
    if target.exists() and not force:
        raise ConfigError(
            _("{path} already exists").format(path=target),
            hint=_("pass --force to overwrite it"),
        )
    given = {
        "database": database,
        "username": username,
        "company": company,
        "mapping": mapping_file,
    }
    secrets = [k for k in PROFILE_KEYS[profile] if k in SECRET_KEYS]
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"crm-bridge configuration ({profile}); see README.md and docs/"))
    erp = tomlkit.table()
    erp.update({"adapter": profile, "url": url})
    for key in PROFILE_KEYS[profile]:
        if key in SECRET_KEYS:
            env = f"CRM_BRIDGE_ERP_{key.upper()}"
            if secret_env and key == secrets[0]:
                env = secret_env
            erp[key] = f"${{{env}}}"
        else:
            erp[key] = given[key]
    doc["erp"] = erp
    doc["sync"] = {"batch_size": 500}
    doc["state"] = {"path": ".crm-bridge/state.db"}
    doc["plugins"] = {"disabled": []}
    target.write_text(tomlkit.dumps(doc), "utf-8")
    envs = ", ".join(str(erp[k])[2:-1] for k in secrets)
    click.echo(
        _("wrote {path}; set {envs} in the environment, then: crm-bridge doctor").format(
            path=target, envs=envs
        )
    )
    starter = target.parent / mapping_file
    if profile in STARTERS and not starter.exists():
        starter.write_text(STARTERS[profile], "utf-8")
        click.echo(
            _("wrote {path}: a starter mapping to fill in (docs/adapters.md)").format(path=starter)
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check the ERP connection, the module, the fields and the permissions."""
    adapter, fields = connect(app.config, app.plugins)
    try:
        checks = adapter.check(list(fields.values()))
    finally:
        adapter.close()
    if as_json:
        emit_json([c.__dict__ for c in checks])
    else:
        width = max(len(_("FAIL")), len(_("warn")), len(_("ok")))  # the marks' column
        for c in checks:
            # ok with a hint: works, but a setting deserves a look (a warning)
            word, color = (
                (_("FAIL"), "red")
                if not c.ok
                else (_("warn"), "yellow")
                if c.hint
                else (_("ok"), "green")
            )
            mark = f"[{color}]{escape(word)}[/]" + " " * (width - len(word))
            line = f"{mark} {c.name:<12} {escape(app.config.redact(c.detail))}"
            console.print(line, soft_wrap=True)
            if c.hint:
                fix = _("fix: {hint}").format(hint=c.hint)
                console.print(" " * (width + 3) + fix, markup=False, soft_wrap=True)
    if not all(c.ok for c in checks):
        sys.exit(1)


@cli.group(cls=Group)
def fields() -> None:
    """The custom fields the enabled plugins declare."""


@fields.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def fields_list(app: App, as_json: bool) -> None:
    """List the declared fields and their owners."""
    declared = app.plugins.fields()
    if as_json:
        emit_json([{**f.__dict__, "choices": list(f.choices)} for f in declared.values()])
        return
    for f in declared.values():
        click.echo(f"{f.name:<28} {f.type:<10} {f.owner:<12} {i18n._(f.label)}")


@fields.command("provision")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def fields_provision(app: App, as_json: bool) -> None:
    """Create or update the field definitions in the ERP (idempotent)."""
    adapter, declared = connect(app.config, app.plugins)
    try:
        changes = provision(adapter, list(declared.values()), app.config)
    finally:
        adapter.close()
    if as_json:
        emit_json({"changes": changes, "fields": len(declared)})
        return
    # Translations in one phrase per language: "translated 34 fields (ru)".
    per_language = Counter(c.rsplit(" ", 1)[1] for c in changes if c.startswith("translated "))
    said = [c for c in changes if not c.startswith("translated ")]
    said += [
        _("translated {n} fields {language}").format(n=n, language=language)
        for language, n in per_language.items()
    ]
    click.echo(
        _("{n} fields declared; {changes}").format(
            n=len(declared), changes=", ".join(said) or _("all up to date")
        )
    )


@cli.command("sync")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing anywhere.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--full", is_flag=True, help="Read every table in full, not what changed.")
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Go on although the ERP served no customers, or far fewer customers or "
    "invoices than the last successful run (exit 4 otherwise).",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write the run's counters and durations here in the Prometheus text format "
    "(atomically; name it *.prom in node-exporter's textfile collector folder).",
)
@pass_app
def sync_command(
    app: App,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    full: bool,
    allow_shrink: bool,
    metrics_file: str | None,
) -> None:
    """Read the ERP, compute every field, write back what changed."""
    from crm_bridge import metrics

    started = time.time()
    try:
        if not dry_run:
            app.config.ensure_state_folder()
        with sync_progress(not (quiet or as_json or log_events.enabled)) as (on_page, on_call):
            result = sync(
                app.config,
                app.plugins,
                dry_run=dry_run,
                on_page=on_page,
                on_call=on_call,
                full=full,
                allow_shrink=allow_shrink,
            )
    except BaseException as exc:
        if metrics_file:
            metrics.write(Path(metrics_file), metrics.failed(dry_run, started, exc))
        raise
    if metrics_file:
        metrics.write(Path(metrics_file), metrics.of_result(result, started))
    if log_events.enabled:
        summary = result_dict(result, sample=0)
        log_events.emit("run", **{k: v for k, v in summary.items() if k != "sample"})
    if as_json:
        emit_json(result_dict(result))
    else:
        print_result(result)
    sys.exit(result.exit_code)


@fields.command("retire")
@click.argument("names", nargs=-1)
@click.option(
    "--plugin",
    "plugin_names",
    multiple=True,
    help="Retire every field this (disabled) plugin declares; repeatable.",
)
@click.option("--yes", is_flag=True, help="Do it without asking (for scripts).")
@pass_app
def fields_retire(
    app: App, names: tuple[str, ...], plugin_names: tuple[str, ...], yes: bool
) -> None:
    """Clear fields NAMES on every customer and remove their definitions from the ERP.

    Only for fields no enabled plugin declares (disable the plugin first: crm-bridge
    otherwise leaves the fields of a disabled plugin as they are).  ``--plugin NAME``
    retires all the fields of plugin NAME, which must still be installed.
    """
    wanted = list(names)
    for plugin in plugin_names:
        wanted += [f.name for f in _declared_by(app, plugin)]
    if not wanted:
        raise ConfigError(
            _("say which fields to retire"),
            hint=_("crm-bridge fields retire NAME [NAME...] or --plugin PLUGIN"),
        )
    declared = app.plugins.fields()
    for name in wanted:
        if name in declared:
            raise ConfigError(
                _("field {name!r} is declared by the enabled plugin {plugin!r}").format(
                    name=name, plugin=declared[name].owner
                ),
                hint=_("crm-bridge plugins disable {plugin}, then retire it").format(
                    plugin=declared[name].owner
                ),
            )
    _retire(app, list(dict.fromkeys(wanted)), yes)


def _declared_by(app: App, plugin: str) -> list[Field]:
    """The fields plugin ``plugin`` declares, whether it is enabled or not."""
    if plugin not in app.plugins.info:
        check_known(app.plugins, [plugin])
    try:
        return declared_fields(plugin)
    except PluginError as exc:
        raise ConfigError(str(exc), hint=exc.hint) from None


def _retire(app: App, names: list[str], yes: bool) -> None:
    """Clear ``names`` on every customer, delete their definitions, forget them."""
    if not yes:
        click.confirm(
            _("Clear {names} on every customer and delete the definition(s)?").format(
                names=", ".join(names)
            ),
            abort=True,
        )
    adapter, _declared = connect(app.config, app.plugins)
    try:
        app.config.ensure_state_folder()
        with RunLock(app.config.state_path):
            store = StateStore(app.config.state_path)
            try:
                for name in names:
                    cleared = adapter.retire(name)
                    store.forget_field(name)
                    click.echo(
                        _("retired {name}: cleared on {n} customers, definition removed").format(
                            name=name, n=cleared
                        )
                    )
            finally:
                store.close()
    finally:
        adapter.close()


@cli.group(cls=Group, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_context
def runs(ctx: click.Context, as_json: bool, limit: int) -> None:
    """The run history: counts, status, duration (``runs show ID`` for one run)."""
    if ctx.invoked_subcommand:
        return
    app = ctx.find_object(App)
    assert app is not None
    store = _store(app)
    try:
        history = store.runs(limit)
    finally:
        store.close()
    if as_json:
        emit_json(history)
        return
    click.echo(
        f"{'run':>5}  {'started':<19}  {'status':<8} {'read':>6} {'planned':>8} "
        f"{'written':>8} {'rejected':>8} {'seconds':>8}"
    )
    for run in history:
        c = run["counts"]
        click.echo(
            f"{run['id']:>5}  {_when(run['started_at'])}  {run['status']:<8} "
            f"{c.get('read', {}).get('customers', '-'):>6} {c.get('planned_customers', '-'):>8} "
            f"{run['written_customers']:>8} {c.get('rejected_records', '-'):>8} "
            f"{c.get('seconds', '-'):>8}"
        )


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--changes", is_flag=True, help="List every cell written: customer, field, old, new.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def runs_show(app: App, run_id: int, changes: bool, as_json: bool) -> None:
    """One run: counts per field, rejected records with reasons, optionally every change."""
    store = _store(app)
    try:
        run = store.run(run_id)
        if run is None:
            raise ConfigError(
                _("there is no run {run_id}").format(run_id=run_id),
                hint=_("crm-bridge runs lists them"),
            )
        if changes:
            run["changes"] = [
                {"customer_id": c, "field": f, "old": o, "new": n}
                for c, f, o, n in store.changes(run_id)
            ]
            run["edited_in_erp"] = [
                {"customer_id": c, "field": f, "crm_bridge_wrote": e, "found": v, "seen": seen}
                for c, f, e, v, seen in store.edits(run_id)
            ]
    finally:
        store.close()
    if as_json:
        emit_json(run)
        return
    counts = run["counts"]
    click.echo(
        f"run {run['id']}: {run['status']}, started {_when(run['started_at'])}, "
        f"{counts.get('seconds', '?')}s" + (f" - {run['message']}" if run["message"] else "")
    )
    click.echo(
        f"  wrote {run['written_customers']} customer(s), {run['written_cells']} cell(s)"
        + (
            f", of which resent from an interrupted run: {counts['resumed_customers']} "
            f"customer(s) in {counts['resumed_calls']} call(s)"
            if counts.get("resumed_calls")
            else ""
        )
    )
    for name, n in counts.get("per_field", {}).items():
        click.echo(f"  {name:<28} {n:>8} changed")
    if counts.get("cleared_cells"):
        click.echo(f"  {counts['cleared_cells']} value(s) cleared: they no longer apply")
    for name, n in counts.get("drift", {}).items():
        click.echo(f"  {name:<28} {n:>8} edited in the ERP since crm-bridge wrote it")
    for name, n in counts.get("conflicts", {}).items():
        click.echo(f"  {name:<28} {n:>8} edited in the ERP during the run: left as found")
    for r in counts.get("plugin_rejections", []):
        field = f", field {r['field']}" if r.get("field") else ""
        example = f" (e.g. {r['example']})" if r.get("example") else ""
        click.echo(f"  rejected plugin {r['plugin']}{field}: {r['reason']}{example}")
    for plugin, names in counts.get("missing_columns", {}).items():
        click.echo(f"  plugin {plugin} returned no column for: {', '.join(names)} (left as held)")
    if counts.get("unprovisioned"):
        click.echo(
            "  not provisioned, left out of the writes: "
            + ", ".join(f"{n} ({s})" for n, s in counts["unprovisioned"].items())
            + "; run crm-bridge fields provision"
        )
    for table, reasons in counts.get("quarantined", {}).items():
        for reason, info in reasons.items():
            click.echo(
                f"  set aside {info['count']} {table}: {reason} (e.g. {info.get('example')})"
            )
    for cid, reason in run["rejected"].items():
        click.echo(f"  rejected customer {cid}: {reason}")
    for change in run.get("changes", []):
        click.echo(
            f"  {change['customer_id']:>10} {change['field']:<28} "
            f"{change['old']} -> {change['new']}"
        )
    for edit in run.get("edited_in_erp", []):
        click.echo(
            f"  {edit['customer_id']:>10} {edit['field']:<28} edited in the ERP: "
            f"crm-bridge wrote {edit['crm_bridge_wrote']}, found {edit['found']}"
        )


def _store(app: App) -> StateStore:
    path = app.local_config.state_path
    if not path.exists():
        raise ConfigError(
            _("no state store at {path} yet").format(path=path),
            hint=_("run crm-bridge sync first"),
        )
    return StateStore(path, readonly=True)


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


@cli.group(cls=Group)
def adapters() -> None:
    """The ERP adapters the installed plugins contribute."""


@adapters.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def adapters_list(app: App, as_json: bool) -> None:
    """Adapter names, what they connect to, and the [erp] keys each accepts."""
    specs = sorted(app.plugins.adapters().values(), key=lambda s: s.name)
    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "description": s.description,
            "settings": sorted(s.config_schema.get("properties", {})),
            "required": [k for k in s.config_schema.get("required", []) if k != "adapter"],
            "capabilities": s.capabilities.__dict__ if s.capabilities else None,
        }
        for s in specs
    ]
    if as_json:
        emit_json(rows)
        return
    for spec, row in zip(specs, rows, strict=True):
        click.echo(f"{row['name']:<12} {row['description']}")
        click.echo(f"{'':<12} [erp] needs: {', '.join(row['required'])}")
        if spec.capabilities:
            click.echo(f"{'':<12} {spec.capabilities.describe()}")


@adapters.command("show")
@click.argument("name")
def adapters_show(name: str) -> None:
    """Print the docs page of adapter profile NAME (shipped with crm-bridge)."""
    from importlib import resources

    from crm_bridge import mapping

    profiles = mapping.profiles()
    if name not in profiles:
        raise ConfigError(
            _("no adapter profile named {name!r}").format(name=name),
            hint=_("profiles: {profiles}; see crm-bridge adapters list").format(
                profiles=", ".join(sorted(profiles))
            ),
        )
    page = mapping.load(name).data.get("docs")
    doc = resources.files("crm_bridge.docs").joinpath(*str(page or "").split("/"))
    if not page or not doc.is_file():
        raise ConfigError(
            _("profile {name!r} ships no docs page").format(name=name),
            hint=_("see crm-bridge adapters list"),
        )
    click.echo(doc.read_text("utf-8"), nl=False)


@cli.group(cls=Group)
def plugins() -> None:
    """List, install, enable and disable plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def plugins_list(app: App, as_json: bool) -> None:
    """Installed plugins: name, version, hooks, enabled."""
    infos = sorted(app.plugins.info.values(), key=lambda i: i.name)
    if as_json:
        emit_json([i.__dict__ for i in infos])
        return
    click.echo(f"{'name':<16} {'version':<10} {'state':<10} hooks")
    for i in infos:
        state = "enabled" if i.enabled else "disabled"
        if i.error:
            state = f"BROKEN ({i.error})"
        click.echo(f"{i.name:<16} {i.version or '-':<10} {state:<10} {', '.join(i.hooks)}")


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL)
    if done.returncode:
        raise CrmBridgeError(
            _("pip {args} failed (exit {code})").format(args=" ".join(args), code=done.returncode),
            hint=_("see pip's output above"),
        )


@plugins.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to create the package folder.",
)
def plugins_new(name: str, directory: str) -> None:
    """Create a new plugin package (pyproject, one field, README, passing tests)."""
    from .scaffold import scaffold

    root = scaffold(name, Path(directory))
    click.echo(
        f"created {root}; next: cd {root} && pip install -e . pytest && pytest, "
        f"then crm-bridge plugins install {root}"
    )


@plugins.command("install")
@click.argument("name")
def plugins_install(name: str) -> None:
    """Install a plugin from PyPI (NAME) or a folder (PATH) into this environment.

    A folder is left as it was: the build/ and *.egg-info folders pip's build
    leaves in it are removed.
    """
    folder = Path(name)
    before = set(folder.iterdir()) if folder.is_dir() else None
    try:
        _pip("install", name)
    finally:
        if before is not None:
            _remove_build_leftovers(folder, before)


def _remove_build_leftovers(folder: Path, before: set[Path]) -> None:
    roots = [folder, folder / "src"]
    for root in roots:
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            leftover = entry.name == "build" or entry.name.endswith(".egg-info")
            if leftover and entry not in before and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


@plugins.command("uninstall")
@click.argument("name")
@click.option(
    "--retire-fields",
    is_flag=True,
    help="First clear the plugin's fields on every customer and delete their definitions "
    "in the ERP (asks unless --yes).",
)
@click.option("--yes", is_flag=True, help="Do it without asking (for scripts).")
@pass_app
def plugins_uninstall(app: App, name: str, retire_fields: bool, yes: bool) -> None:
    """Uninstall the distribution that provides plugin NAME (or distribution NAME).

    Its entries in the config file (``[plugins] disabled`` and ``[plugins.NAME]``)
    are removed too, so the next run does not trip over a plugin that is gone.
    """
    info = app.plugins.info.get(name)
    if retire_fields:
        names = [f.name for f in _declared_by(app, name)]
        if names:
            _retire(app, names, yes)
    _pip("uninstall", "-y", info.distribution if info and info.distribution else name)
    _forget_in_config(app, name)


def _config_path(app: App) -> Path | None:
    path = Path(app.config_path or os.environ.get("CRM_BRIDGE_CONFIG") or "crm-bridge.toml")
    return path if path.is_file() else None


def _forget_in_config(app: App, name: str) -> None:
    """Remove plugin ``name`` from ``[plugins] disabled`` and its ``[plugins.NAME]``
    table, keeping the file's comments and layout (tomlkit)."""
    path = _config_path(app)
    if path is None:
        return
    doc = tomlkit.parse(path.read_text("utf-8"))
    table = doc.get("plugins")
    if table is None:
        return
    changed = []
    disabled = table.get("disabled")
    if disabled is not None and name in [str(n) for n in disabled]:
        for i in reversed(range(len(disabled))):
            if str(disabled[i]) == name:
                del disabled[i]
        changed.append("[plugins] disabled")
    if name in table and name != "disabled":
        del table[name]
        changed.append(f"[plugins.{name}]")
    if changed:
        path.write_text(tomlkit.dumps(doc), "utf-8")
        click.echo(f"removed {name} from {' and '.join(changed)} in {path}")


def _set_disabled(app: App, name: str, disabled: bool) -> None:
    path = app.local_config.path
    doc = tomlkit.parse(path.read_text("utf-8"))
    table = doc.setdefault("plugins", tomlkit.table())
    current = [str(n) for n in table.get("disabled", [])]
    # Enabling a name that is no longer installed only removes it from the list.
    if disabled or name not in current:
        check_known(app.plugins, [name])
    new = sorted(set(current) | {name}) if disabled else [n for n in current if n != name]
    table["disabled"] = new
    path.write_text(tomlkit.dumps(doc), "utf-8")
    said = _("{name} disabled in {path}") if disabled else _("{name} enabled in {path}")
    click.echo(said.format(name=name, path=path))


@plugins.command("enable")
@click.argument("name")
@pass_app
def plugins_enable(app: App, name: str) -> None:
    """Enable plugin NAME in the config file."""
    _set_disabled(app, name, False)


@plugins.command("disable")
@click.argument("name")
@pass_app
def plugins_disable(app: App, name: str) -> None:
    """Disable plugin NAME in the config file (its fields are left as they are)."""
    _set_disabled(app, name, True)


def _disabled_from_config(argv: list[str]) -> list[str]:
    path = os.environ.get("CRM_BRIDGE_CONFIG")
    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        path = argv[argv.index("--config") + 1]
    try:
        return config_mod.load(path, secrets=False).disabled
    except CrmBridgeError:
        return []


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    loaded = load_plugins(_disabled_from_config(argv))
    loaded.pm.hook.register_commands(cli=cli)
    cli.main(argv, prog_name="crm-bridge", obj=loaded)


@cli.command()
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML report.")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False), help="Write the workbook.")
@click.option("--lang", "language", metavar="LANG", help=LANG_HELP)
@pass_app
def report(app: App, html_path: str | None, xlsx_path: str | None, language: str | None) -> None:
    """The last run's segments, ABC/XYZ, loyalty, KPIs, offers and risks: HTML and XLSX."""
    from crm_bridge import report as report_mod

    if not (html_path or xlsx_path):
        raise ConfigError(
            _("say where to write the report"),
            hint=_("pass --html PATH, --xlsx PATH or both"),
        )
    lang = i18n.resolve(language or _global_lang(), app.config.language)
    built = report_mod.from_last_run(app.config, app.plugins, lang)
    for path, write in ((html_path, report_mod.write_html), (xlsx_path, report_mod.write_xlsx)):
        if path:
            try:
                write(built, Path(path))
            except OSError as exc:
                raise ConfigError(
                    _("cannot write the report to {path}: {reason}").format(
                        path=path, reason=exc.strerror or exc
                    ),
                    hint=_("check that the folder exists and that you may write there"),
                ) from None
            err.print(_("wrote {path}").format(path=path))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--lang", "language", metavar="LANG", help=LANG_HELP)
@pass_app
def diagnose(app: App, as_json: bool, language: str | None) -> None:
    """How controlled the customer process is, from the ERP's own data (+, +/-, -)."""
    from crm_bridge import diagnose as diagnose_mod
    from crm_bridge.extract import extract
    from crm_bridge.table_cache import TableCache, utc_now

    cfg = app.config
    adapter, _fields = connect(cfg, app.plugins)
    now = utc_now()
    cached = TableCache.of(cfg).load(cfg.full_refresh_days, now)
    try:  # reads like a dry run: through the table cache, never into it
        snapshot, _tables = extract(adapter, cfg.as_of, None, cached, now, cfg.quality)
    finally:
        adapter.close()
    with i18n.using(i18n.resolve(language or _global_lang(), cfg.language)):
        findings = diagnose_mod.diagnose(snapshot)
        if as_json:
            emit_json([f.as_dict() for f in findings])
            return
        for process in map(i18n._, diagnose_mod.PROCESSES):
            click.echo(process)
            for f in (f for f in findings if f.process == process):
                click.echo(f"  {f.status:<3} {f.parameter}: {f.evidence}")
                if f.status != "+":
                    click.echo("      " + i18n._("start: {advice}").format(advice=f.advice))
        score = sum({"+": 2, "+/-": 1}.get(f.status, 0) for f in findings)
        click.echo(
            i18n._("maturity: {score} of {points} points").format(
                score=score, points=2 * len(findings)
            )
        )
