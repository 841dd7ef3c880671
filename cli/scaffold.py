"""``crm-bridge plugins new NAME``: a separate, installable plugin package that works.

The scaffold is what a plugin author needs on day one: a pyproject with the
entry point, one hook implementation that declares and computes a field, a
README, and tests that pass out of the box using ``crm_bridge.testing``.
"""

from __future__ import annotations

import re
from pathlib import Path

from crm_bridge.errors import ConfigError
from crm_bridge.i18n import _

NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "crm-bridge-{dash}"
version = "0.1.0"
description = "A crm-bridge plugin: {name}"
requires-python = ">=3.11"
dependencies = ["crm-bridge"]

[project.entry-points.crm_bridge]
{name} = "crm_bridge_{name}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
pythonpath = ["src"]
"""

README = """# crm-bridge-{dash}

A crm-bridge plugin. It declares one custom field,
`{name}_invoices_12m` (invoices in the last 365 days), and computes it from the snapshot.

    crm-bridge plugins install .        # into crm-bridge's environment
    crm-bridge fields provision         # create the field in the ERP
    crm-bridge sync --dry-run

Develop: `pip install -e . pytest && pytest`. The hooks are documented in crm-bridge's
`docs/plugin_hooks.md`; `crm_bridge.testing.run_plugin` runs the plugin through the core
in memory, and its `customer`, `invoice`, `payment` and `quote` helpers build the rows.
"""

PLUGIN = '''"""crm-bridge plugin {name}: invoices per customer over the last 365 days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from crm_bridge import Field, Snapshot, hookimpl

FIELD = "{name}_invoices_12m"


@hookimpl
def declare_fields() -> list[Field]:
    return [Field(FIELD, "integer", "Invoices (12 months)",
                  "Posted invoices in the 365 days before the analysis date.", minimum=0)]


@hookimpl
def compute(snapshot: Snapshot, settings: Mapping[str, Any]) -> pl.LazyFrame:
    # Lazy: crm-bridge collects it, reading only the columns the query uses.
    since = snapshot.as_of - dt.timedelta(days=365)
    return (
        snapshot.sales()
        .filter((pl.col("kind") == "invoice") & (pl.col("date") > since))
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias(FIELD))
    )
'''

TESTS = """import datetime as dt

from crm_bridge import Snapshot
from crm_bridge.testing import customer, invoice, run_plugin

import crm_bridge_{name} as plugin

D = dt.date


def snapshot() -> Snapshot:
    return Snapshot.from_rows(
        as_of=D(2026, 6, 30),
        customers=[customer("A"), customer("B")],
        invoices=[
            invoice("1", "A", D(2026, 6, 1), 100.0),
            invoice("2", "A", D(2025, 1, 1), 100.0),  # too old
            invoice("3", "A", D(2026, 2, 1), -20.0, "credit_note"),  # not a purchase
            invoice("4", "B", D(2026, 3, 1), 50.0, state="draft"),  # not posted
        ],
    )


def test_counts_invoices_of_the_last_365_days() -> None:
    # run_plugin runs the plugin through crm-bridge's core, in memory: settings
    # checked against its schema, compute, validation against its fields, plan.
    run = run_plugin(plugin, snapshot(), name="{name}")
    assert run.rejections == [] and run.warnings == []
    assert run.column(plugin.FIELD) == {{"A": 1}}


def test_the_field_is_declared_with_a_help_text() -> None:
    (field,) = plugin.declare_fields()
    assert field.name == plugin.FIELD and field.type == "integer" and field.help
"""

GITIGNORE = """__pycache__/
*.egg-info/
build/
dist/
.pytest_cache/
.venv/
"""


def scaffold(name: str, parent: Path) -> Path:
    """Write the plugin package ``crm-bridge-NAME`` under ``parent``; return its folder."""
    if not NAME.match(name):
        raise ConfigError(
            _(
                "plugin name {name!r} must be 2-41 characters of a-z, 0-9 and _, "
                "starting with a letter"
            ).format(name=name),
            hint=_("for example: crm-bridge plugins new acme_kpis"),
        )
    dash = name.replace("_", "-")
    root = parent / f"crm-bridge-{dash}"
    if root.exists():
        raise ConfigError(
            _("{path} already exists").format(path=root),
            hint=_("choose another name or folder"),
        )
    package = root / "src" / f"crm_bridge_{name}"
    package.mkdir(parents=True)
    (root / "tests").mkdir()
    values = {"name": name, "dash": dash}
    (root / "pyproject.toml").write_text(PYPROJECT.format(**values), "utf-8")
    (root / "README.md").write_text(README.format(**values), "utf-8")
    (package / "__init__.py").write_text(PLUGIN.format(**values), "utf-8")
    (root / "tests" / f"test_{name}.py").write_text(TESTS.format(**values), "utf-8")
    (root / ".gitignore").write_text(GITIGNORE, "utf-8")
    return root
