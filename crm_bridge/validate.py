"""Validate: check each plugin's output against the fields it declared.

A plugin whose output has an undeclared column, a value of the wrong type, an
out-of-range value or an unknown customer is rejected as a whole before
anything is planned; the other plugins' values go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_bridge.compute import PluginOutput
from crm_bridge.fields import Field

Desired = dict[str, dict[str, Any]]  # customer id -> field -> normalised value


@dataclass(frozen=True)
class Rejection:
    plugin: str
    reason: str


def _check(out: PluginOutput, fields: Mapping[str, Field], customers: set[str]) -> str | None:
    frame = out.frame
    assert frame is not None
    if "customer_id" not in frame.columns:
        return "its output has no customer_id column"
    for column in frame.columns:
        if column == "customer_id":
            continue
        owner = fields[column].owner if column in fields else None
        if owner != out.plugin:
            return f"it returned the field {column!r}, which it did not declare"
    if frame["customer_id"].is_duplicated().any():
        return "its output has several rows for one customer"
    unknown = set(frame["customer_id"].cast(str).to_list()) - customers
    if unknown:
        return f"its output names {len(unknown)} unknown customer(s), e.g. {min(unknown)!r}"
    for column in frame.columns[1:]:
        field = fields[column]
        for cid, value in zip(frame["customer_id"], frame[column], strict=True):
            problem = field.check(value)
            if problem:
                return f"field {column!r} for customer {cid!r}: {problem}"
    return None


def validate(
    outputs: Sequence[PluginOutput], fields: Mapping[str, Field], customers: set[str]
) -> tuple[Desired, list[Rejection]]:
    desired: Desired = {}
    rejections = []
    for out in outputs:
        if out.error:
            rejections.append(Rejection(out.plugin, out.error))
            continue
        if out.frame is None:
            continue
        problem = _check(out, fields, customers)
        if problem:
            rejections.append(Rejection(out.plugin, problem))
            continue
        columns = out.frame.columns[1:]
        for row in out.frame.iter_rows():
            cells = desired.setdefault(str(row[0]), {})
            for name, value in zip(columns, row[1:], strict=True):
                cells[name] = fields[name].normalize(value)
    return desired, rejections
