"""``sync --metrics-file PATH``: a run's counters and durations in the Prometheus
text format, for node-exporter's textfile collector (or any scraper).

The file is written atomically (a temporary file beside it, then renamed), so a
collector never reads half of it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from crm_bridge.errors import ConfigError
from crm_bridge.sync import RunResult

STATUSES = ("ok", "partial", "failed")
HELP = {
    "crm_bridge_run_status": "1 for the status the last run ended with",
    "crm_bridge_run_success": "1 if the last run ended ok or partial, 0 if it failed",
    "crm_bridge_run_dry": "1 if the last run was a dry run",
    "crm_bridge_run_last_timestamp_seconds": "when the last run ended (unix time)",
    "crm_bridge_run_duration_seconds": "wall time of the last run",
    "crm_bridge_run_id": "the last run's id in the state store (0 for a dry run)",
    "crm_bridge_read_records": "records read from the ERP, per table",
    "crm_bridge_planned_cells": "cells the last run planned to change",
    "crm_bridge_planned_customers": "customers the last run planned to change",
    "crm_bridge_written_customers": "customers the ERP confirmed written",
    "crm_bridge_rejected_plugins": "plugins whose output was rejected",
    "crm_bridge_rejected_records": "customers the ERP refused",
    "crm_bridge_quarantined_records": "ERP records set aside as implausible, per table",
    "crm_bridge_unprovisioned_fields": "fields left out because the ERP lacks their definition",
    "crm_bridge_plugin_duration_seconds": "compute time per plugin",
}


def _line(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(
            f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in sorted(labels.items())
        )
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def render(samples: list[tuple[str, float, dict[str, str]]]) -> str:
    """The text format: a HELP and TYPE line per metric, then its samples."""
    out: list[str] = []
    seen: set[str] = set()
    for name, value, labels in samples:
        if name not in seen:
            seen.add(name)
            out.append(f"# HELP {name} {HELP.get(name, name)}")
            out.append(f"# TYPE {name} gauge")
        out.append(_line(name, value, **labels))
    return "\n".join(out) + "\n"


def _common(status: str, dry_run: bool, started: float) -> list[tuple[str, float, dict[str, str]]]:
    now = time.time()
    return [
        *[("crm_bridge_run_status", float(s == status), {"status": s}) for s in STATUSES],
        ("crm_bridge_run_success", float(status != "failed"), {}),
        ("crm_bridge_run_dry", float(dry_run), {}),
        ("crm_bridge_run_last_timestamp_seconds", now, {}),
        ("crm_bridge_run_duration_seconds", round(now - started, 3), {}),
    ]


def of_result(result: RunResult, started: float) -> str:
    counts: dict[str, Any] = result.counts
    samples = _common(result.status, result.dry_run, started)
    samples.append(("crm_bridge_run_id", float(result.run_id or 0), {}))
    for table, n in sorted(counts.get("read", {}).items()):
        samples.append(("crm_bridge_read_records", float(n), {"table": table}))
    samples += [
        ("crm_bridge_planned_cells", float(counts.get("planned_cells", 0)), {}),
        ("crm_bridge_planned_customers", float(counts.get("planned_customers", 0)), {}),
        ("crm_bridge_written_customers", float(counts.get("written", 0)), {}),
        ("crm_bridge_rejected_plugins", float(len(result.rejections)), {}),
        ("crm_bridge_rejected_records", float(counts.get("rejected_records", 0)), {}),
        ("crm_bridge_unprovisioned_fields", float(len(counts.get("unprovisioned", {}))), {}),
    ]
    for table, reasons in sorted(counts.get("quarantined", {}).items()):
        total = sum(info.get("count", 0) for info in reasons.values())
        samples.append(("crm_bridge_quarantined_records", float(total), {"table": table}))
    for plugin, seconds in sorted(counts.get("plugin_seconds", {}).items()):
        samples.append(("crm_bridge_plugin_duration_seconds", seconds, {"plugin": plugin}))
    return render(samples)


def failed(dry_run: bool, started: float, exc: BaseException) -> str:
    """The metrics of a run that raised: its status and duration."""
    return render(_common("failed", dry_run, started))


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write the metrics file {path}: {exc.strerror or exc}",
            hint="check that its folder exists and that crm-bridge's user may write there",
        ) from None
