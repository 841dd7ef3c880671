# mypy: disable-error-code="empty-body"
"""The plugin hooks of crm-bridge (pluggy project ``crm_bridge``).

Argument names are public API: they may be added to, never renamed.  Every hook
is documented in ``docs/plugin_hooks.md``; a test fails when one is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    import polars as pl

    from crm_bridge.adapter import AdapterSpec
    from crm_bridge.config import Config
    from crm_bridge.fields import Field
    from crm_bridge.plan import Plan
    from crm_bridge.snapshot import Snapshot
    from crm_bridge.sync import RunResult

hookspec = pluggy.HookspecMarker("crm_bridge")
hookimpl = pluggy.HookimplMarker("crm_bridge")


# -- Contributions -----------------------------------------------------------


@hookspec
def declare_fields() -> Sequence[Field]:
    """Return the custom fields this plugin computes and writes.

    The core records the plugin as each field's owner; a plugin may only
    return values for the fields it declared here.
    """


@hookspec
def config_schema() -> Mapping[str, Any] | None:
    """Return the JSON Schema of this plugin's ``[plugins.NAME]`` config table.

    The core validates the table against it before anything runs; the
    validated table is passed to :func:`compute` as ``settings``.
    """


@hookspec
def compute(snapshot: Snapshot, settings: Mapping[str, Any]) -> pl.DataFrame | pl.LazyFrame:
    """Compute this plugin's field values from the snapshot.

    Return one frame with a ``customer_id`` column and one column per declared
    field.  A null, or no row, means "no value": the value the ERP holds for
    that cell is cleared (unless the field is ``keep_last_value``); a declared
    field with no column is a warning and is left as the ERP holds it.  The core
    calls each plugin separately, so one failing plugin does not stop others;
    a plugin that raises anything or returns no frame is rejected.
    """


@hookspec
def register_adapters(register: Callable[[AdapterSpec], None]) -> None:
    """Contribute ERP adapters by calling ``register(AdapterSpec(...))``."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``crm-bridge`` command line group."""


@hookspec
def report_views(
    snapshot: Snapshot, values: pl.DataFrame, settings: Mapping[str, Any]
) -> Mapping[str, pl.DataFrame] | None:
    """Contribute tables to ``crm-bridge report``: {title: frame}.

    ``snapshot`` holds the tables of the last successful run, ``values`` the
    crm-bridge values the ERP holds (one row per customer, one column per
    field, plus ``name``), ``settings`` this plugin's config table.  Each frame
    becomes a section of the HTML report and a sheet of the XLSX workbook.
    """


# -- Observation -------------------------------------------------------------


@hookspec
def before_apply(plan: Plan, dry_run: bool) -> None:
    """Called with the plan once it is made, before anything is written.

    Observers must not change the plan.  Called on dry runs too.
    """


@hookspec
def after_sync(result: RunResult, config: Config) -> None:
    """Called when a sync run has ended, however it ended, with its run record.

    ``result.status`` is ``ok``, ``partial`` or ``failed``; a failed run (it
    raised: the ERP unreachable, a bad config, the run lock taken...) has
    ``result.error`` (the message, secrets redacted), the counts made so far and
    an empty plan; the error is raised again after the observers ran.
    ``config`` is the loaded configuration (``config.redact(text)`` hides its
    secrets).  Observers should not raise: after a run that ended, an exception
    from one is raised to the caller (exit 1); after a failed run it is only
    reported as a warning, the run's own error being the one that matters.
    """
