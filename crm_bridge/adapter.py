"""The contract between the core and an ERP adapter.

An adapter reads canonical records page by page, provisions the custom fields,
writes batches of field values, and reads back the values its fields hold.
Adapters arrive through the ``register_adapters`` hook as an
:class:`AdapterSpec`: a name, a factory taking the validated ``[erp]`` table,
and the JSON Schema of that table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from crm_bridge.fields import Field

# The [erp] keys every adapter that speaks HTTP takes (JSON Schema properties).
CONNECTION_SETTINGS: dict[str, Any] = {
    "timeout": {"type": "number", "minimum": 1, "default": 120},
    "requests_per_second": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Cap on the requests sent per second (the ERP's rate limit)",
    },
    "verify_tls": {
        "type": ["boolean", "string"],
        "minLength": 1,
        "default": True,
        "description": "true (requests' CA bundle, not REQUESTS_CA_BUNDLE), false to skip "
        "TLS verification (warns), or an existing PEM CA bundle file",
    },
}


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do; the core and ``crm-bridge adapters list`` read it."""

    # Writes many customers with the same values in one call.
    multi_record_write: bool = False
    # Creates the custom-field definitions through the API (else an admin adds them).
    provisioning: bool = True
    # Single-record calls the adapter sends in parallel.
    concurrent_writes: int = 1
    # Tables it can read as "changed since a time" (lines: those of changed parents).
    incremental: tuple[str, ...] = ()
    # Applies a key only where the ERP still holds the value the plan saw
    # (``Batch.expected``), atomically, and reports the others as conflicts.
    conditional_writes: bool = False

    def describe(self) -> str:
        return ", ".join(
            [
                "multi-record writes" if self.multi_record_write else "one record per call",
                "provisions fields" if self.provisioning else "fields added by the admin",
                f"{self.concurrent_writes} parallel writes",
                "conditional writes" if self.conditional_writes else "unconditional writes",
                f"incremental reads of {', '.join(self.incremental)}"
                if self.incremental
                else "full reads",
            ]
        )


@dataclass(frozen=True)
class Check:
    """One line of ``crm-bridge doctor``."""

    name: str
    ok: bool
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class Batch:
    """Customers whose crm-bridge values change the same way, in one write.

    ``values`` holds only the keys that change; ``None`` removes a key.  Every
    other key the customer holds, crm-bridge's or not, stays as it is.
    ``expected`` holds, for the keys to check, the value the plan saw in the ERP
    (``None``: no value).  An adapter with ``conditional_writes`` changes a key
    only where the ERP still holds that value, atomically, and reports the other
    keys in ``WriteResult.conflicts``; a key the ERP already holds at its new
    value (a resent call that had landed) is neither written nor a conflict.
    """

    customer_ids: tuple[str, ...]
    values: Mapping[str, Any]
    expected: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class WriteResult:
    """The ERP's answer to one write call: which customers were written.

    A customer in ``written`` got every key of its batch except those listed
    for it in ``conflicts`` ({customer: {field: value found in the ERP}}).
    """

    written: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)


class Adapter(Protocol):
    """What the pipeline needs from an ERP connector.

    Values read back by ``current_values`` may come as the ERP sends them
    (strings for numbers, unix dates...): the core parses them with
    :meth:`crm_bridge.fields.Field.parse` before comparing.
    """

    capabilities: Capabilities

    def check(self, fields: Sequence[Field]) -> list[Check]:
        """Reachability, login, module, provisioned fields, permissions."""
        ...

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]] | pl.DataFrame]:
        """Yield pages of canonical rows of ``table`` (see ``crm_bridge.snapshot``),
        each a list of dicts or a Polars DataFrame with the table's columns.

        With ``since`` (only for tables in ``capabilities.incremental``): the rows
        created or modified at or after it (UTC, whatever the ERP's own zone); for
        invoice and order lines, every line of the invoices or orders modified since,
        and any line modified since on its own.  ``current_values`` then covers the
        customers read.
        """
        ...

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]] | pl.DataFrame]:
        """Yield pages of (customer_id, {field: value}) of crm-bridge's own fields, or
        pages as columns: a frame of ``customer_id`` and a column per field (no
        Python value per cell: what an ERP answering in columns, or a file, can give;
        such pages count after the pages of rows)."""
        ...

    def provision(self, fields: Sequence[Field]) -> list[str]:
        """Create or update the field definitions; return what changed. Idempotent."""
        ...

    # Optional: ``field_status(fields) -> {name: "missing" | "changed"}`` names the
    # fields whose definition the ERP lacks or holds differently from the
    # declaration.  Where an adapter has it, sync checks before writing (and
    # provisions with ``[sync] auto_provision``, else leaves those fields out).
    #
    # Optional: ``provision_translations(fields, languages) -> [change, ...]`` writes
    # each field's label, help text and choice names in every catalog language the ERP
    # has active (of ``languages``, ``[locale] languages``, when not None);
    # ``fields provision`` calls it after ``provision``.  Idempotent like ``provision``.

    def retire(self, name: str) -> int:
        """Remove field ``name`` from every customer, then its definition; return the
        number of customers that held a value."""
        ...

    def write(self, batches: Sequence[Batch]) -> WriteResult:
        """Change the keys of each batch (see :class:`Batch`) in as few calls as it can."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    factory: Callable[[Mapping[str, Any]], Adapter]
    config_schema: Mapping[str, Any]
    description: str = ""
    # Keys of the [erp] table that hold secrets, redacted wherever shown.
    secret_keys: tuple[str, ...] = ("password", "token", "api_key", "api_secret")
    # What the adapter can do, when known without connecting.
    capabilities: Capabilities | None = None
