"""Plan: the cells whose desired value differs from what the ERP holds.

The comparison is against the values read back from the ERP, so a value a
person edited by hand is put back (crm-bridge owns its fields) and a value
already right costs nothing.  When a plugin ran and has no value for a
customer, the value the ERP holds no longer applies and is cleared (unless the
field is declared ``keep_last_value``); the fields of a plugin that did not run
or was rejected are left as they are.  A number that moved less than its
field's tolerance is not a change (``held_back``).

A write carries only the keys that change, each with the value the plan saw
(``Batch.expected``), so an adapter that can writes a key only where it still
holds that value; customers whose changes are the same share one batch.
"""

from __future__ import annotations

import functools
import gc
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from crm_bridge import columns
from crm_bridge.adapter import Batch
from crm_bridge.columns import Values
from crm_bridge.fields import Field, encode
from crm_bridge.validate import Desired


@dataclass(frozen=True)
class Change:
    customer_id: str
    field: str
    old: Any
    new: Any


class Plan:
    """The changed cells (``changes``, in customer and field order) and the write
    batches (``batches``).  Cells decided column-wise are kept as columns (one
    frame per field) until someone asks for them as Python values: counting
    them, as a dry run does, makes no Python value per cell."""

    def __init__(self) -> None:
        # Cells a person changed in the ERP since crm-bridge last wrote them:
        # (customer, field, value crm-bridge wrote, value found: None if emptied);
        # kept when the field's policy is "keep", overwritten (and listed in
        # changes) otherwise.  Only values read back this run are compared.
        self.drift: list[tuple[str, str, Any, Any]] = []
        # Cells that moved less than their field's tolerance: not worth a write.
        self.held_back = 0
        # Cells the ERP already holds at the desired value but the store does not
        # know as applied (customer, field, value as JSON): see ``sync``.
        # (made on demand: a dry run, which remembers nothing, never asks).
        self.there_looked_at: list[tuple[str, str, str]] = []
        self._there: Callable[[], list[tuple[str, str, str]]] | None = None
        # Changes decided one customer at a time, and per field the changes
        # decided column-wise (customer_id, old and new keys).
        self.looked_at: list[Change] = []
        self.columns: list[tuple[Field, pl.DataFrame]] = []
        self._changes: list[Change] | None = None
        self._batches: list[Batch] | None = None

    @property
    def already_there(self) -> list[tuple[str, str, str]]:
        if self._there is not None:
            self.there_looked_at.extend(self._there())
            self._there = None
        return self.there_looked_at

    @property
    def changes(self) -> list[Change]:
        if self._changes is None:
            self._changes = self._as_python() if self.columns else list(self.looked_at)
        return self._changes

    def _as_python(self) -> list[Change]:
        """Every change as a ``Change``, in customer and field order (the order
        found by Polars, the values made once per cell)."""
        parts = [(f.name, frame) for f, frame in self.columns]
        made: list[list[Change]] = []
        enabled = gc.isenabled()
        gc.disable()  # millions of new objects, none of them garbage
        try:
            for f, frame in self.columns:
                ids, olds, news = (frame[c].to_list() for c in ("customer_id", "old", "new"))
                if f.type == "numeric":
                    olds = [columns.value_of(f, v) for v in olds]
                    news = [columns.value_of(f, v) for v in news]
                names = [f.name] * len(ids)
                made.append([Change(*cell) for cell in zip(ids, names, olds, news, strict=True)])
            made.append(self.looked_at)
            order = pl.concat(
                [
                    frame.select(
                        "customer_id",
                        pl.lit(name).alias("field"),
                        pl.lit(i, pl.Int32).alias("part"),
                        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
                    )
                    for i, (name, frame) in enumerate(parts)
                ]
                + [
                    pl.DataFrame(
                        {
                            "customer_id": [c.customer_id for c in self.looked_at],
                            "field": [c.field for c in self.looked_at],
                            "part": [len(parts)] * len(self.looked_at),
                            "row": list(range(len(self.looked_at))),
                        },
                        schema={
                            "customer_id": pl.String,
                            "field": pl.String,
                            "part": pl.Int32,
                            "row": pl.Int64,
                        },
                    )
                ]
            ).sort("customer_id", "field")
            where = zip(order["part"].to_list(), order["row"].to_list(), strict=True)
            return [made[p][r] for p, r in where]
        finally:
            if enabled:
                gc.enable()

    @property
    def batches(self) -> list[Batch]:
        """Customers whose changes are the same share one batch."""
        if self._batches is None:
            groups: dict[str, tuple[list[str], dict[str, Any], dict[str, Any]]] = {}
            for cid, cells in itertools.groupby(self.changes, key=lambda c: c.customer_id):
                values, expected = {}, {}
                for c in cells:
                    values[c.field], expected[c.field] = c.new, c.old
                key = "\x1f".join(
                    f"{k}={encode(v)}/{encode(expected[k])}" for k, v in values.items()
                )
                groups.setdefault(key, ([], values, expected))[0].append(cid)
            self._batches = [Batch(tuple(ids), v, e) for ids, v, e in groups.values()]
        return self._batches

    @property
    def cells(self) -> int:
        return len(self.looked_at) + sum(frame.height for _, frame in self.columns)

    @property
    def customers(self) -> int:
        ids = {c.customer_id for c in self.looked_at}
        if not self.columns:
            return len(ids)
        together = pl.concat([frame["customer_id"] for _, frame in self.columns])
        return len(ids) + together.n_unique()

    @property
    def cleared(self) -> int:
        return sum(c.new is None for c in self.looked_at) + sum(
            frame["new"].null_count() for _, frame in self.columns
        )

    def per_field(self) -> dict[str, int]:
        counts = Counter(c.field for c in self.looked_at)
        for f, frame in self.columns:
            counts[f.name] += frame.height
        return dict(sorted((k, v) for k, v in counts.items() if v))


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: the JSON text compared, after the cheap test that settles
    nearly every cell of a nightly run (equal values of one type)."""
    return (type(a) is type(b) and a == b) or encode(a) == encode(b)


def _customer(
    plan: Plan,
    cid: str,
    wanted: Mapping[str, Any],
    held: Mapping[str, Any],
    last: Mapping[str, Any] | None,
    fields: Mapping[str, Field],
    keep: frozenset[str],
    clearable: frozenset[str],
    reread: bool,
) -> list[str]:
    """One customer's changes and drift, cell by cell; returns the fields planned."""
    now = {k: _normalized(fields[k], v) if k in fields else v for k, v in held.items()}
    kept: set[str] = set()
    if last and reread:
        for k, was in sorted(last.items()):
            if k in fields and not _same(now.get(k), was):
                plan.drift.append((cid, k, was, now.get(k)))
                if k in keep:
                    kept.add(k)
    values: dict[str, Any] = {}
    for k in sorted((wanted.keys() | (clearable & now.keys())) - kept):
        new = wanted.get(k)
        if new is None:
            if k in now and not fields[k].keep_last_value:
                values[k] = None
        elif k not in now or not _same(new, now[k]):
            if k in now and fields[k].within_tolerance(new, now[k]):
                plan.held_back += 1
            else:
                values[k] = new
    if not values:
        return []
    plan.looked_at.extend(Change(cid, k, now.get(k), v) for k, v in values.items())
    return list(values)


def _normalized(f: Field, value: Any) -> Any:
    try:
        return f.normalize(value)
    except (ArithmeticError, ValueError, TypeError):  # unreadable: compared as it is
        return value


def _ids(ids: Collection[str] | pl.Series) -> pl.Series:
    if isinstance(ids, pl.Series):
        return ids.cast(pl.String)
    return pl.Series(list(ids), dtype=pl.String)


def make_plan(
    desired: Desired | Values,
    current: Mapping[str, Mapping[str, Any]] | Values,
    fields: Mapping[str, Field],
    previous: Mapping[str, Mapping[str, Any]] | Values | None = None,
    keep: frozenset[str] = frozenset(),
    ran: Collection[str] = frozenset(),
    customers: Collection[str] | pl.Series | None = None,
    reread: Collection[str] | pl.Series | None = None,
) -> Plan:
    """``previous``: the values last written (drift is measured against them);
    ``keep``: fields whose hand-edited values are left as the person set them;
    ``ran``: the fields of the plugins whose output was accepted this run (a
    customer without a value for one has none: its ERP value is cleared);
    ``customers``: the customers read this run (only theirs are cleared; default
    every customer in ``current``); ``reread``: the customers whose values were
    read back from the ERP this run (default all): drift is claimed only there.

    Each input is a mapping {customer: {field: value}} or ``columns.Values``.
    The cells are compared column by column (``columns``); only the customers
    with a difference, or with a value that has no key, are looked at one by one.
    """
    plan = Plan()
    want = desired if isinstance(desired, Values) else columns.of_rows(desired, fields)
    held = current if isinstance(current, Values) else columns.of_rows(current, fields)
    last = (
        previous
        if isinstance(previous, Values)
        else columns.of_rows(previous or {}, fields, normalise=False)
    )
    ran = frozenset(ran)
    clearable = frozenset(k for k in ran if k in fields and not fields[k].keep_last_value)
    consider = sorted((set(want.names) | clearable) & fields.keys())
    tracked = sorted(set(last.names) & fields.keys())
    held_names = set(consider) | set(tracked)
    frame = _differing(want, held, last, consider, tracked, held_names)
    names = set(frame.columns)

    def col(name: str, suffix: str = "") -> pl.Expr:
        return pl.col(name + suffix) if name + suffix in names else pl.lit(None)

    in_d = col("\x00d").fill_null(False)
    in_h = col("\x00h").fill_null(False)
    in_customers = (
        in_h if customers is None else pl.col("customer_id").is_in(_among(frame, customers))
    )
    slow = pl.col("customer_id").is_in(_odd_ids(want, held, last).implode())
    clear_held = [col(k, "\x00h").is_not_null() for k in sorted(clearable)]
    candidate = in_d | (in_customers & pl.any_horizontal(clear_held)) if clear_held else in_d
    drift_scope = candidate & col("\x00p").fill_null(False)
    if reread is not None:
        drift_scope = drift_scope & pl.col("customer_id").is_in(_ids(reread).implode())
    # Computed once, as columns: every field's expressions below refer to them.
    frame = frame.with_columns(
        in_d.alias("in_d"),
        in_customers.fill_null(False).alias("in_customers"),
        candidate.fill_null(False).alias("\x00candidate"),
        drift_scope.fill_null(False).alias("\x00drift"),
        slow.fill_null(True).alias("\x00slow"),
    )
    in_d, candidate = pl.col("in_d"), pl.col("\x00candidate")
    drift_scope, slow = pl.col("\x00drift"), pl.col("\x00slow")
    drifted = {
        k: drift_scope
        & col(k, "\x00p").is_not_null()
        & (col(k, "\x00h").is_null() | (col(k, "\x00h") != col(k, "\x00p")).fill_null(True))
        for k in tracked
    }
    # A customer is looked at one by one when a value of theirs has no key, a
    # value was edited by hand, or a number moved by less than it may be held back.
    look: list[pl.Expr] = [slow, *drifted.values()]
    changed: list[pl.Expr] = []
    there: list[pl.Expr] = []
    for k in consider:
        f = fields[k]
        new, now, was = col(k), col(k, "\x00h"), col(k, "\x00p")
        kept = drifted[k] if k in keep and k in drifted else pl.lit(False)
        write = candidate & ~kept & new.is_not_null() & (now.is_null() | (new != now))
        change = write
        if not f.keep_last_value:
            scope = candidate if k in clearable else in_d
            change = change | (scope & ~kept & new.is_null() & now.is_not_null())
        changed.append(change.fill_null(False).alias("\x00c" + k))
        if (f.tolerance or f.relative_tolerance) and f.type in ("integer", "numeric"):
            look.append(write & now.is_not_null())
        if k in want.names:
            unknown = was.is_null() | (new != was)
            held_so = new.is_not_null() & now.is_not_null() & (new == now) & unknown
            there.append(held_so.fill_null(False).alias("\x00t" + k))
    frame = frame.with_columns(
        pl.any_horizontal(look).fill_null(True).alias("look"),
        *changed,
        *there,
    )
    looked = frame.filter("look").sort("customer_id")
    if looked.height:
        _plan_slowly(plan, looked, want, held, last, fields, keep, clearable, reread)
    flags = [pl.col("\x00c" + k) for k in consider]
    # Settled column-wise: in a nightly run nearly every row has no change at all.
    rest = frame.filter(~pl.col("look") & pl.any_horizontal(flags)) if flags else frame.clear()
    for k in consider:
        cells = (
            rest.lazy()
            .select("customer_id", col(k, "\x00h").alias("old"), col(k).alias("new"), "\x00c" + k)
            .filter("\x00c" + k)
            .drop("\x00c" + k)
            .collect()
        )
        if cells.height:
            plan.columns.append((fields[k], cells))
    if there:
        remembered = [k for k in consider if k in want.names]
        marks = [pl.col("\x00t" + k) for k in remembered]
        settled = frame.filter(~pl.col("look") & pl.any_horizontal(marks))
        if settled.height:
            settled = settled.select("customer_id", *marks)
            plan._there = functools.partial(_already_there, settled, remembered, want, fields)
    return plan


def _among(frame: pl.DataFrame, customers: Collection[str] | pl.Series) -> pl.Series:
    """The customers of ``frame`` (a few rows) that are among ``customers`` (all
    of them): looked up the cheap way round, the few in the many."""
    given = customers if isinstance(customers, pl.Series) else _ids(customers)
    found = given.filter(given.is_in(frame["customer_id"].unique().implode()))
    return found.cast(pl.String).implode()


def _odd_ids(*sides: Values) -> pl.Series:
    odd = {cid for side in sides for cid, _ in side.odd}
    return pl.Series(sorted(odd), dtype=pl.String)


def _differing(
    want: Values,
    held: Values,
    last: Values,
    consider: list[str],
    tracked: list[str],
    held_names: set[str],
) -> pl.DataFrame:
    """The rows of customers where what is computed (``want``), held and last
    written differ in a field, or a value is odd: ``customer_id``, the computed
    values, the held ones suffixed ``\\x00h``, the last written ``\\x00p``, and
    ``\\x00d``/``\\x00h``/``\\x00p`` marking the sides that have the customer.

    Nearly every row of a nightly run plans nothing: the sides are matched by
    their row numbers (a join of the ids alone) and compared column by column
    through them, and only the rows that differ are put together, so the three
    sides are never held joined in full (at a million customers: 0.5 GB less)."""
    rows = columns.row_numbers(
        want.frame["customer_id"], held.frame["customer_id"], "full", ("\x00iw", "\x00ih")
    )
    if tracked:
        ip = columns.row_numbers(
            rows["customer_id"], last.frame["customer_id"], "left", ("\x00row", "\x00ip")
        )
        rows = rows.with_columns(ip.sort("\x00row")["\x00ip"])

    def side(values: Values, name: str, at: str) -> pl.Series | None:
        if name not in values.frame.columns or at not in rows.columns:
            return None
        return columns.aligned(values.frame.select(name), rows[at]).to_series()

    def apart(a: pl.Series | None, b: pl.Series | None) -> pl.Series | None:
        if a is not None and b is not None:
            return a.ne_missing(b)
        return a.is_not_null() if a is not None else b.is_not_null() if b is not None else None

    def differs(k: str) -> pl.Series | None:
        """Where field ``k`` differs: computed against held, last written against
        held (enough for the third pair: where computed equals held, it equals
        computed too); a held value where nothing is computed is a clear."""
        now = side(held, k, "\x00ih")
        new = side(want, k, "\x00iw") if k in consider else None
        was = side(last, k, "\x00ip") if k in tracked else None
        flags = [apart(other, now) for other in (new, was) if other is not None]
        if k in consider and new is None and now is not None:
            flags.append(now.is_not_null())
        found = [f.fill_null(True) for f in flags if f is not None]
        return functools.reduce(operator.or_, found) if found else None

    # Field by field, one column of each side at a time, the fields in parallel
    # (Polars releases the GIL).
    with ThreadPoolExecutor(pl.thread_pool_size()) as pool:
        flags = list(pool.map(differs, sorted(set(consider) | set(tracked))))
    odd = rows["customer_id"].is_in(_odd_ids(want, held, last).implode())
    rows = rows.filter(functools.reduce(operator.or_, [f for f in flags if f is not None], odd))
    parts = [rows.select("customer_id", pl.col("\x00iw").is_not_null().alias("\x00d"))]
    wanted = want.names
    if wanted:
        at = rows["\x00iw"]
        parts.append(want.frame.select(pl.col(n).gather(at) for n in wanted))
    for values, suffix, names in (
        (held, "\x00h", [n for n in held.names if n in held_names]),
        (last, "\x00p", [n for n in last.names if n in tracked] if tracked else []),
    ):
        index = "\x00i" + suffix[-1]
        if index not in rows.columns:
            continue
        at = rows[index]
        parts.append(
            values.frame.select(
                *(pl.col(n).gather(at).alias(n + suffix) for n in names),
                pl.lit(at).is_not_null().alias(suffix),
            )
        )
    return pl.concat(parts, how="horizontal")


def _already_there(
    marked: pl.DataFrame, names: list[str], want: Values, fields: Mapping[str, Field]
) -> list[tuple[str, str, str]]:
    """(customer, field, value as JSON) of the cells marked in ``marked``."""
    cells = pl.concat(
        [marked.filter("\x00t" + k).select("customer_id", pl.lit(k).alias("field")) for k in names]
    ).sort("customer_id", "field")
    frame = want.frame.join(marked.select("customer_id"), on="customer_id", how="semi")
    rows = columns.rows_of(frame, want.odd, fields, want.names)
    return [(cid, name, encode(rows[cid][name])) for cid, name in cells.iter_rows()]


def _plan_slowly(
    plan: Plan,
    frame: pl.DataFrame,
    want: Values,
    held: Values,
    last: Values,
    fields: Mapping[str, Field],
    keep: frozenset[str],
    clearable: frozenset[str],
    reread: Collection[str] | pl.Series | None,
) -> None:
    """The customers with a difference (or an odd value), one by one."""
    wanted = columns.rows_of(frame, want.odd, fields, want.names)
    suffix = {"\x00h": held, "\x00p": last}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for end, values in suffix.items():
        names = [c for c in frame.columns if c.endswith(end) and c != end]
        part = frame.select("customer_id", *(pl.col(c).alias(c[: -len(end)]) for c in names))
        found[end] = columns.rows_of(part, values.odd, fields, [c[: -len(end)] for c in names])
    now_of, last_of = found["\x00h"], found["\x00p"]
    again = None if reread is None else set(_ids(reread).to_list())
    for cid, in_d, in_customers in frame.select("customer_id", "in_d", "in_customers").iter_rows():
        now = {k: v for k, v in now_of.get(cid, {}).items() if v is not None}
        if not in_d and not (in_customers and not clearable.isdisjoint(now)):
            continue
        wants = wanted.get(cid, {}) if in_d else {}
        was = {k: v for k, v in last_of.get(cid, {}).items() if v is not None}
        planned = _customer(
            plan,
            cid,
            wants,
            now,
            was,
            fields,
            keep,
            clearable,
            again is None or cid in again,
        )
        for k, v in wants.items():
            if v is None or k in planned or k not in now:
                continue
            if k not in was or encode(was[k]) != encode(v):
                plan.there_looked_at.append((cid, k, encode(v)))


def chunk(batches: list[Batch], size: int) -> list[list[Batch]]:
    """Split batches into write calls of at most ``size`` customers each."""
    calls: list[list[Batch]] = []
    call: list[Batch] = []
    room = size
    for batch in batches:
        ids = batch.customer_ids
        while ids:
            take, ids = ids[:room], ids[room:]
            call.append(Batch(take, batch.values, batch.expected))
            room -= len(take)
            if room == 0:
                calls.append(call)
                call, room = [], size
    if call:
        calls.append(call)
    return calls
