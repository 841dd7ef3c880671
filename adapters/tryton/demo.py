"""``crm-bridge demo``: a sandbox Tryton with generated data, provisioned and synced."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import click
from rich.table import Table

from crm_bridge import Field, report
from crm_bridge import config as config_mod
from crm_bridge.console import console, err, print_result, sync_progress
from crm_bridge.plan import Plan
from crm_bridge.plugin_manager import load_plugins
from crm_bridge.sample_data import Profile
from crm_bridge.sync import connect, sync

from .adapter import TrytonAdapter
from .sandbox import ADMIN_PASSWORD, sandbox, web_client

PASSWORD_ENV = "CRM_BRIDGE_DEMO_PASSWORD"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# The languages the demo's Tryton gets beside English (docs/glossary.md).
DEMO_LANGUAGES = ("ru", "lv", "zh_CN")


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="crm-bridge-demo",
    show_default=True,
    help="Where the sandbox database, config and state go.",
)
@click.option("--customers", type=int, default=Profile.customers, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave the Tryton server up afterwards.")
@click.option("--port", type=int, default=None, help="Port for Tryton (default: a free one).")
def demo(directory: str, customers: int, keep_running: bool, port: int | None) -> None:
    """Run crm-bridge end to end on a sandbox Tryton with generated data."""
    started = time.monotonic()
    root = Path(directory).resolve()
    profile = Profile(customers=customers)
    server = sandbox(root, profile, echo=lambda m: err.print(m))
    if port:
        server.port, server.url = port, f"http://127.0.0.1:{port}"
    web = None
    if keep_running:  # serve Tryton's web client too, to look at the CRM tab in a browser
        try:
            server.web_root = web = web_client()
        except RuntimeError as exc:
            err.print(
                f"[yellow]no web client ({str(exc).splitlines()[0]}); use the Tryton "
                "desktop client to connect[/]"
            )
    # SIGTERM (kill, systemd, a container stop) and SIGHUP (the terminal closed) stop
    # Tryton too: it runs in its own process group, which no signal to us reaches.
    handlers = {sig: signal.signal(sig, _exit_on_signal) for sig in STOP_SIGNALS}
    try:
        server.start()
        os.environ[PASSWORD_ENV] = ADMIN_PASSWORD
        cfg_path = root / "crm-bridge.toml"
        cfg_path.write_text(
            '[erp]\nadapter = "tryton"\n'
            f'url = "{server.url}"\ndatabase = "{server.database}"\n'
            f'username = "admin"\npassword = "${{{PASSWORD_ENV}}}"\n\n'
            '[state]\npath = "state.db"\n',
            "utf-8",
        )
        (root / "state.db").unlink(missing_ok=True)
        cfg = config_mod.load(cfg_path)
        plugins = load_plugins(cfg.disabled)
        adapter, fields = connect(cfg, plugins)
        try:
            changes = adapter.provision(list(fields.values()))
            # Russian, Latvian and Chinese beside English: the labels in all four.
            assert isinstance(adapter, TrytonAdapter)
            adapter.activate_languages(DEMO_LANGUAGES)
            translated = adapter.provision_translations(list(fields.values()))
        finally:
            adapter.close()
        err.print(
            f"Tryton up at {server.url}; {len(changes)} field definitions provisioned, "
            f"{len(translated)} translated into {', '.join(DEMO_LANGUAGES)}"
        )
        with sync_progress() as (on_page, on_call):
            result = sync(cfg, plugins, on_page=on_page, on_call=on_call)
        print_result(result)
        for name in ("rfm_segment", "abc_xyz", "loyalty_tier"):
            if name in fields:
                _summary(result.plan, fields[name])
        built = report.from_last_run(cfg, plugins)
        report.write_html(built, root / "report.html")
        report.write_xlsx(built, root / "report.xlsx")
        err.print(f"report: {root / 'report.html'} and {root / 'report.xlsx'}")
        console.print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
        console.print(
            f"Look at the values in Tryton: server {server.url}, database "
            f"{server.database!r}, user 'admin', password '{ADMIN_PASSWORD}' -> Parties > "
            "Parties > open a customer > CRM tab (to read it in Russian, Latvian or Chinese: "
            "the user menu > Preferences > Language).\n"
            f"Run crm-bridge yourself: crm-bridge --config {cfg_path} sync --dry-run "
            f"(with {PASSWORD_ENV}={ADMIN_PASSWORD})"
        )
        if keep_running:
            if web:
                console.print(
                    f"Web client: {server.url}/#{server.database}/model/party.party "
                    f"(user 'admin', password '{ADMIN_PASSWORD}'): open a customer, tab CRM."
                )
            console.print("Tryton keeps running; press Ctrl-C to stop it.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _exit_on_signal(signum: int, _frame: object) -> None:
    err.print(f"{signal.Signals(signum).name}: stopping Tryton")
    raise SystemExit(128 + signum)


def _summary(plan: Plan, field: Field) -> None:
    """Customers per value of one selection field, as written to Tryton."""
    labels = dict(field.choices)
    counts = Counter(
        labels.get(str(b.values.get(field.name)), "(none)")
        for b in plan.batches
        for _ in b.customer_ids
    )
    table = Table(title=f"Customers per {field.label} (written to Tryton)")
    table.add_column(field.label)
    table.add_column("customers", justify="right")
    for name, n in counts.most_common():
        table.add_row(name, str(n))
    console.print(table)
