"""The one small base of the declarative adapters (REST and SOAP).

Everything a mapping file describes lives here: paging, records to canonical
rows, reading back crm-bridge's values, provisioning (the definitions with their
list settings, and the records that show them: a heading, inherited views), and
writing (grouped multi-record calls, parallel single-record calls,
read-modify-write for ERPs whose update replaces the whole record, refusals
isolated by splitting).
A subclass supplies one thing: :meth:`call`, which sends one request of the
mapping and returns the decoded answer.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from crm_bridge import i18n, list_views, mapping, topics
from crm_bridge.adapter import (
    CONNECTION_SETTINGS,
    AdapterSpec,
    Batch,
    Capabilities,
    Check,
    WriteResult,
)
from crm_bridge.errors import AuthenticationError, ConfigError, ErpError, RefusedError
from crm_bridge.fields import Field, encode
from crm_bridge.i18n import _
from crm_bridge.snapshot import TABLES


def register_declarative(
    register: Callable[[AdapterSpec], None],
    protocol: str,
    make: Callable[[mapping.MappingFile, Mapping[str, Any]], Any],
    schema: Mapping[str, Any],
    secrets: tuple[str, ...],
    description: str,
) -> None:
    """Register the generic ``protocol`` adapter (``mapping = FILE``) and one adapter
    per shipped profile of that protocol (``adapter = "odoo"``...)."""
    # Read as shipped: only the profile a run uses is checked against the schema
    # (checking all of them cost every command 25 ms).
    profiles = {
        name: spec
        for name in sorted(mapping.profiles())
        if (spec := mapping.shipped(name)).protocol == protocol
    }

    def generic(settings: Mapping[str, Any]) -> Any:
        if "mapping" not in settings:
            raise ConfigError(
                f"config key erp.mapping is missing: the {protocol} adapter needs a mapping file",
                hint="set erp.mapping to a mapping file (docs/adapters.md), or use a profile: "
                f"adapter = {' | '.join(profiles)}",
            )
        spec = mapping.load(settings["mapping"])
        if spec.protocol != protocol:
            raise ConfigError(
                f"mapping {spec.name} is a {spec.protocol} mapping, not {protocol}",
                hint=f"use adapter = {spec.protocol!r} with this mapping",
            )
        return make(spec, settings)

    register(AdapterSpec(protocol, generic, schema, description, secrets))
    for name, spec in profiles.items():
        required = ["adapter", *spec.data.get("settings", {}).get("required", ["url"])]
        title = spec.data.get("title", name)
        register(
            AdapterSpec(
                name,
                functools.partial(_make_profile, make, name),
                {**schema, "required": required},
                f"{title} ({protocol} profile; docs: crm-bridge adapters show {name})"
                + (f"; {spec.data['tested']}" if "tested" in spec.data else ""),
                secrets,
                capabilities(spec),
            )
        )


def _make_profile(
    make: Callable[[mapping.MappingFile, Mapping[str, Any]], Any],
    name: str,
    settings: Mapping[str, Any],
) -> Any:
    return make(mapping.load(name), settings)


def settings_schema(*credentials: str) -> dict[str, Any]:
    """The JSON Schema of the [erp] table of a declarative adapter taking ``credentials``."""
    return {
        "type": "object",
        "required": ["adapter", "url"],
        "additionalProperties": False,
        "properties": {
            "adapter": {"type": "string"},
            "mapping": {"type": "string", "description": "A mapping file, or a profile name"},
            "url": {"type": "string", "pattern": "^https?://"},
            **{key: {"type": "string"} for key in credentials},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 20000},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 32},
            "read_concurrency": {
                "type": "integer",
                "minimum": 1,
                "maximum": 16,
                "description": "Pages read at once, for page- and offset-paged lists",
            },
            "timezone": {
                "type": "string",
                "description": "The ERP's timezone (IANA name, Europe/Brussels): unix dates "
                "are midnights there. Default: what the ERP says, else UTC",
            },
            **CONNECTION_SETTINGS,
        },
    }


def capabilities(spec: mapping.MappingFile, concurrency: int | None = None) -> Capabilities:
    write = spec.data["write"]
    tables = spec.data["tables"]
    return Capabilities(
        multi_record_write="multi" in write or "multi_records" in write,
        provisioning="provision" in spec.data,
        concurrent_writes=int(concurrency or write.get("concurrency", 4)),
        incremental=tuple(t for t in TABLES if "incremental" in tables.get(t, {})),
    )


class DeclarativeAdapter:
    """An adapter driven by a :class:`crm_bridge.mapping.MappingFile`."""

    def __init__(self, spec: mapping.MappingFile, settings: Mapping[str, Any]) -> None:
        self.mapping = spec
        self.where = f"{spec.data.get('title', spec.name)} at {settings.get('url', '?')}"
        defaults = spec.data.get("settings", {}).get("defaults", {})
        self.vars: dict[str, Any] = {**defaults, **settings}
        self.page_size = int(settings.get("page_size") or spec.data.get("page_size", 500))
        self.read_concurrency = int(settings.get("read_concurrency") or 1)
        write = spec.data["write"]
        self.write_spec: dict[str, Any] = write
        self.field_name: str = write["field_name"]
        self.values_path: str = write.get("values", "")
        self.definition_name: str = spec.data.get("provision", {}).get("name", self.field_name)
        self.capabilities = capabilities(spec, settings.get("concurrency"))
        self._current: dict[str, dict[str, Any]] | None = None
        self._definitions: dict[str, Any] | None = None
        # Rows of the tables other tables' fields look up with ``via``.
        self._referenced = {
            f["via"]
            for t in spec.data["tables"].values()
            for f in t["fields"].values()
            if isinstance(f, Mapping) and "via" in f
        }
        self._rows_by_id: dict[str, dict[str, dict[str, Any]]] = {}
        self._attached: dict[str, list[Any]] = {}
        self._zone: tuple[dt.tzinfo, str] | None = None
        self._date_names: frozenset[str] | None = None
        if settings.get("timezone"):
            self._zone = (_zone_info(str(settings["timezone"])), "erp.timezone")

    # -- the one protocol-specific method ------------------------------------
    def call(
        self, request: Mapping[str, Any], variables: Mapping[str, Any], empty: Sequence[int] = ()
    ) -> Any:
        """Send ``request`` (rendered with ``variables``) and return the answer.

        Returns None for an answer whose status is in ``empty``; raises
        :class:`ErpError` (``RefusedError`` when the ERP refused this record).
        """
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- reading -------------------------------------------------------------
    def pages(
        self, spec: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> Iterator[list[Any]]:
        """Yield the pages of raw records a table (or list) spec describes."""
        paging = spec.get("paging", {"style": "none"})
        style, size = paging["style"], int(paging.get("size", self.page_size))
        first = int(paging.get("first", 0))
        variables: dict[str, Any] = {
            **self.vars,
            "limit": size,
            "page": first,
            "offset": 0,
            "last": 0,
            "cursor": None,
            "bookmark": None,
            **(extra or {}),
        }
        request = spec["request"]
        if style in ("page", "offset") and self.read_concurrency > 1:
            yield from self._pages_at_once(spec, variables, size)
            return
        while True:
            answer = self.call(request, variables, spec.get("empty_statuses", ()))
            records = mapping.records(answer, request.get("records", "")) if answer else []
            if records:
                yield records
            if style == "none" or not records:
                return
            if style == "cursor":
                variables["cursor"] = mapping.get(answer, paging["next"])
                if not variables["cursor"]:
                    return
                continue
            if len(records) < size:
                return
            if style == "page":
                variables["page"] += 1
            elif style == "offset":
                variables["offset"] += len(records)
            else:  # keyset on an id, or a bookmark key (NAV)
                variables["last"] = variables["bookmark"] = mapping.get(records[-1], paging["key"])

    def _pages_at_once(
        self, spec: Mapping[str, Any], variables: dict[str, Any], size: int
    ) -> Iterator[list[Any]]:
        """Page- or offset-paged lists, ``read_concurrency`` pages in flight at once."""
        request, empty = spec["request"], spec.get("empty_statuses", ())
        first, wave = variables["page"], self.read_concurrency

        def fetch(n: int) -> list[Any]:
            page = {**variables, "page": first + n, "offset": n * size}
            answer = self.call(request, page, empty)
            return mapping.records(answer, request.get("records", "")) if answer else []

        with ThreadPoolExecutor(wave) as pool:
            start = 0
            while True:
                for records in pool.map(fetch, range(start, start + wave)):
                    if records:
                        yield records
                    if len(records) < size:
                        return
                start += wave

    def zone(self) -> tuple[dt.tzinfo, str]:
        """The ERP's timezone and where it was found: ``erp.timezone``, else what the
        mapping's ``timezone`` request answers, else UTC."""
        if self._zone is None:
            rule = self.mapping.data.get("timezone")
            found = None
            if rule is not None:
                try:
                    answer = self.call(rule["request"], self.vars, rule.get("empty_statuses", ()))
                except ErpError:
                    answer = None
                found = mapping.get(answer, rule["path"]) if answer is not None else None
            if isinstance(found, str) and found:
                path = mapping.render(rule["request"].get("path", ""), self.vars) if rule else ""
                self._zone = (_zone_info(found, f"{self.where} says"), f"read from {path}")
            else:
                self._zone = (dt.UTC, "assumed: set erp.timezone if the ERP runs elsewhere")
        return self._zone

    def extract(
        self, table: str, since: dt.datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        first = self.mapping.table(table)
        if first is None:
            return
        keep = table == "customers" and "current" not in self.mapping.data
        if keep:
            self._current = {}
        for spec in (first, *first.get("more", ())):  # further sources of the same rows
            yield from self._extract(table, spec, since, keep)

    def _extract(
        self, table: str, spec: Mapping[str, Any], since: dt.datetime | None, keep: bool
    ) -> Iterator[list[dict[str, Any]]]:
        if since is not None and "incremental" in spec:
            local = spec["incremental"].get("local", False)
            spec = _since(spec, since, self.zone()[0] if local else dt.UTC)
        dated = any(dtype == pl.Date for dtype in TABLES[table].values())
        zone = self.zone()[0] if dated else dt.UTC  # only dates are read in the ERP's zone
        rows = mapping.RowMapper(table, spec["fields"], self._rows_by_id, zone)
        key = next(iter(TABLES[table]))
        remember = table in self._referenced
        for records in self.pages(spec):
            if "attach" in spec:
                self._attach(records, spec["attach"])
            if keep:
                self._remember_values(records, spec)
            page = rows.rows(records, spec.get("explode"))
            if page and all(r.get(key) is None for r in page):
                raise ConfigError(
                    f"the mapping finds no {key} in any of the {len(page)} {table} records "
                    f"{self.where} returned: it maps nothing",
                    hint=f"compare [tables.{table}] (records, fields.{key}) with one answer "
                    "of the ERP",
                )
            if remember:
                self._rows_by_id.setdefault(table, {}).update((r[key], r) for r in page)
            yield page

    def _attach(self, records: list[Any], rule: Mapping[str, Any]) -> None:
        """Set ``rule["name"]`` on each record to the list its own request answers
        (an invoice's payments); each answer is read once per adapter."""
        name, when = rule["name"], rule.get("when")
        wanted = []
        for record in records:
            if not isinstance(record, dict):
                continue
            record[name] = []
            if when is None or str(mapping.get(record, when["path"])) in map(str, when["values"]):
                wanted.append(record)

        def fetch(record: dict[str, Any]) -> list[Any]:
            variables = {**self.vars, "parent": record}
            key = str(mapping.render(rule["request"].get("path", ""), variables))
            if key not in self._attached:
                answer = self.call(rule["request"], variables, rule.get("empty_statuses", ()))
                items = [dict(i) for i in mapping.records(answer, "") if isinstance(i, Mapping)]
                if "sort" in rule:
                    items.sort(key=lambda i: str(i.get(rule["sort"]) or ""))
                for item in items:
                    if "item_id" in rule:
                        item["_id"] = mapping.render(
                            rule["item_id"], {"parent": record, "item": item}
                        )
                self._attached[key] = items
            return self._attached[key]

        workers = max(1, min(int(rule.get("concurrency", self.read_concurrency)), len(wanted)))
        with ThreadPoolExecutor(workers) as pool:
            for record, items in zip(wanted, pool.map(fetch, wanted), strict=True):
                record[name] = items

    def _remember_values(self, records: list[Any], spec: Mapping[str, Any]) -> None:
        assert self._current is not None
        id_spec = spec["fields"]["customer_id"]
        id_path = id_spec if isinstance(id_spec, str) else id_spec["path"]
        for record in records:
            values = self._values_of(record)
            if values:
                self._current[str(mapping.get(record, id_path))] = values

    def _values_of(self, record: Any) -> dict[str, Any]:
        held = mapping.get(record, self.values_path) if self.values_path else record
        if not isinstance(held, Mapping):  # Dolibarr sends [] when no extrafield is set
            return {}
        # A false is kept: a boolean's value, and the core reads it as empty for others.
        named = ((mapping.crm_name(self.field_name, k), v) for k, v in held.items())
        out = {name: value for name, value in named if name is not None and value is not None}
        for name in self._unix_dates().intersection(out):
            if isinstance(out[name], int | float) and not isinstance(out[name], bool):
                out[name] = dt.datetime.fromtimestamp(out[name], self.zone()[0]).date().isoformat()
        return out

    def _unix_dates(self) -> frozenset[str]:
        """crm-bridge date fields the ERP sends as unix midnights in its own timezone
        (read as ISO dates there, not as UTC: a day early east of Greenwich), known
        from the field definitions."""
        if self._date_names is None:
            kind = self.mapping.data.get("provision", {}).get("types", {}).get("date")
            found: dict[str, Any] = {}
            if self.write_spec.get("dates") == "unix" and kind and self.zone()[0] != dt.UTC:
                try:
                    found = self.definitions()
                except ErpError:  # definitions not readable: dates read as UTC midnights
                    found = {}
            self._date_names = frozenset(
                n for n, d in found.items() if mapping.get(d, "type") == kind
            )
        return self._date_names

    def current_values(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        spec = self.mapping.data.get("current")
        if spec is None:
            if self._current is None:
                for _ in self.extract("customers"):
                    pass
            assert self._current is not None
            yield list(self._current.items())
            return
        names = [mapping.erp_name(self.field_name, n) for n in self.definitions()]
        if not names:
            return
        id_spec = spec["fields"]["customer_id"]
        id_path = id_spec if isinstance(id_spec, str) else id_spec["path"]
        for records in self.pages(spec, {"value_fields": names}):
            page = [(str(mapping.get(r, id_path)), self._values_of(r)) for r in records]
            yield [(cid, values) for cid, values in page if values]

    # -- fields --------------------------------------------------------------
    def definitions(self) -> dict[str, Any]:
        """crm-bridge's field definitions in the ERP, by crm-bridge name."""
        if self._definitions is None:
            provision = self.mapping.data.get("provision")
            if provision is None:
                self._definitions = self._manual_definitions()
            else:
                listing = provision["list"]
                found = {}
                for records in self.pages(listing):
                    for record in records:
                        erp = str(mapping.get(record, listing["name"]))
                        name = mapping.crm_name(self.definition_name, erp)
                        if name is not None:
                            found[name] = record
                self._definitions = found
        return self._definitions

    def _manual_definitions(self) -> dict[str, Any]:
        """Fields an admin added by hand: the keys of the first customer record."""
        spec = self.mapping.data["tables"]["customers"]
        for records in self.pages({**spec, "paging": {"style": "none"}}, {"limit": 1}):
            held = mapping.get(records[0], self.values_path) if self.values_path else records[0]
            if isinstance(held, Mapping):
                names = (mapping.crm_name(self.field_name, k) for k in held)
                return {n: True for n in names if n is not None}
        return {}

    def provision(self, fields: Sequence[Field]) -> list[str]:
        provision = self.mapping.data.get("provision")
        existing = self.definitions()
        if provision is None:
            missing = [f for f in fields if f.name not in existing]
            if missing:
                raise ErpError(
                    f"{len(missing)} field(s) must be added to the customer record by the "
                    f"ERP's administrator: {self._manual_list(missing)}",
                    hint=self.mapping.data.get("manual", {}).get("instructions"),
                )
            return []
        for name, lookup in self.mapping.data.get("lookups", {}).items():
            if name not in self.vars:
                self.vars[name] = mapping.get(
                    self.call(lookup["request"], self.vars), lookup["path"]
                )
        changes = []
        for f, variables, old in self._plan(fields, provision, existing):
            if old is None:
                self._create(f, provision, variables)
                changes.append(f"created {f.name}")
            else:
                variables["def_id"] = mapping.get(old, provision["list"].get("id", "id"))
                self.call(provision["update"], variables)
                changes.append(f"updated {f.name}")
        for view in provision.get("views", ()):
            changes.extend(self._provision_view(view, fields, provision))
        self._definitions = self._date_names = None
        return changes

    def provision_translations(
        self, fields: Sequence[Field], languages: Sequence[str] | None = None
    ) -> list[str]:
        """Each field's label and help text in every language the ERP has active that has
        a catalog (of ``languages``, when given), where the profile says how
        (``[provision.translations]``: Odoo's per-language field descriptions, ERPNext's
        Translation records with ``by = "text"``); what already reads the same is left
        alone, so a second run writes nothing."""
        spec = (self.mapping.data.get("provision") or {}).get("translations")
        if spec is None:
            return []
        languages_spec = spec["languages"]
        codes = [
            str(mapping.get(record, languages_spec["code"]))
            for records in self.pages(languages_spec, self.vars)
            for record in records
        ]
        listing, changes = spec["list"], []
        for code in codes:
            language = i18n.normalize(code)
            if language is None or (languages is not None and language not in languages):
                continue
            variables = {**self.vars, "lang": code}
            if spec.get("by") == "text":
                changes += self._translate_texts(fields, spec, language, variables)
                continue
            held = {}
            for records in self.pages(listing, variables):
                for record in records:
                    erp = str(mapping.get(record, listing["name"]))
                    name = mapping.crm_name(self.definition_name, erp)
                    if name is not None:
                        held[name] = record
            with i18n.using(language):
                for f in fields:
                    old = held.get(f.name)
                    if isinstance(old, Mapping):  # Odoo sends an empty text as false
                        old = {k: None if v is False else v for k, v in old.items()}
                    texts = {**variables, "label": i18n._(f.label), "help": i18n._(f.help)}
                    if old is not None and _differs(old, listing["compare"], texts):
                        texts["def_id"] = mapping.get(old, listing.get("id", "id"))
                        self.call(spec["update"], texts)
                        changes.append(f"translated {f.name} ({language})")
        return changes

    def _translate_texts(
        self,
        fields: Sequence[Field],
        spec: Mapping[str, Any],
        language: str,
        variables: Mapping[str, Any],
    ) -> list[str]:
        """``by = "text"`` (ERPNext's Translation doctype): one record per English text
        (label, help) and language, created or updated where it reads otherwise."""
        listing, changes = spec["list"], []
        held = {
            str(mapping.get(record, listing["name"])): record
            for records in self.pages(listing, variables)
            for record in records
        }
        done: set[str] = set()  # a text two fields share is written once
        with i18n.using(language):
            for f in fields:
                written = False
                for source in filter(None, (f.label, f.help)):
                    if source in done:
                        continue
                    done.add(source)
                    texts = {**variables, "source": source, "text": i18n._(source)}
                    old = held.get(source)
                    if old is None and texts["text"] != source:
                        self.call(spec["create"], texts)
                        written = True
                    elif old is not None and _differs(old, listing["compare"], texts):
                        texts["def_id"] = mapping.get(old, listing.get("id", "id"))
                        self.call(spec["update"], texts)
                        written = True
                if written:
                    changes.append(f"translated {f.name} ({language})")
        return changes

    def _plan(
        self, fields: Sequence[Field], provision: Mapping[str, Any], existing: Mapping[str, Any]
    ) -> Iterator[tuple[Field, dict[str, Any], Any]]:
        """(field, its template variables, the ERP's definition or None) for each field
        to create, or to update because its definition differs from the declaration
        (label, list settings: ``list.compare``)."""
        listing = provision["list"]
        compare = listing.get(
            "compare", {listing["label"]: "{label}"} if "label" in listing else {}
        )
        first = int(provision.get("position", 0)) + 1
        for position, f in enumerate(topics.reading_order(fields), first):
            variables = {**self.vars, **self._definition_vars(f, provision, position)}
            old = existing.get(f.name)
            if old is None or ("update" in provision and _differs(old, compare, variables)):
                yield f, variables, old

    def _provision_view(
        self, view: Mapping[str, Any], fields: Sequence[Field], provision: Mapping[str, Any]
    ) -> list[str]:
        """Create or update one record that shows the fields (Dolibarr's CRM heading,
        Odoo's inherited list and search views); found again by its name."""
        variables: dict[str, Any] = {**self.vars, "position": int(provision.get("position", 0))}
        if "arch" in view:
            variables["arch"] = list_views.ARCHES[view["arch"]](fields, self.field_name)
        held = self._view(view)
        if held is None:
            self.call(view["create"], variables)
            return [f"created {view['title']}"]
        if _differs(held, view["list"].get("compare", {}), variables):
            variables["def_id"] = mapping.get(held, view["list"].get("id", "id"))
            self.call(view["update"], variables)
            return [f"updated {view['title']}"]
        return []

    def _view(self, view: Mapping[str, Any]) -> Any:
        """The ERP's record of ``view``, or None."""
        listing = view["list"]
        for records in self.pages(listing):
            for record in records:
                if str(mapping.get(record, listing["name"])) == view["name"]:
                    return record
        return None

    def _create(self, f: Field, provision: Mapping[str, Any], variables: Mapping[str, Any]) -> None:
        """Create one definition; a create that failed but left the definition behind
        (half done by the ERP) is adopted rather than failing every later run."""
        try:
            self.call(provision["create"], variables)
        except AuthenticationError:
            raise
        except ErpError:
            self._definitions = None
            if f.name not in self.definitions():
                raise

    def _manual_list(self, fields: Sequence[Field]) -> str:
        types = self.mapping.data.get("manual", {}).get("types", {})
        return ", ".join(
            f"{mapping.erp_name(self.field_name, f.name)} ({types.get(f.type, f.type)})"
            for f in fields
        )

    def _definition_vars(
        self, f: Field, provision: Mapping[str, Any], position: int = 0
    ) -> dict[str, Any]:
        style = provision.get("selection", "lines")
        choices = [(k, i18n._(v)) for k, v in f.choices]
        label = (lambda text: text) if "translations" in provision else i18n._
        selection: Any
        if style == "key_label_lines":
            selection = "\n".join(f"{k}:{v}" for k, v in choices)
        elif style == "json":
            selection = {k: v for k, v in choices}
        elif style == "odoo":
            selection = [
                [0, 0, {"value": k, "name": v, "sequence": i}] for i, (k, v) in enumerate(choices)
            ]
        else:
            selection = "\n".join(k for k, _ in choices)
        return {
            "name": f.name,
            "erp_name": mapping.erp_name(self.definition_name, f.name),
            "field_name": mapping.erp_name(self.field_name, f.name),
            # one label per field in these ERPs: in [locale] language (see sync.provision);
            # English where the profile writes each language's own (provision.translations)
            "label": label(f.label),
            "help": label(f.help),
            "type": provision["types"][f.type],
            "size": provision.get("sizes", {}).get(f.type),
            "selection": selection if choices else None,
            "digits": f.digits,
            "owner": f.owner,
            # A headline column of the customer list (and a filter there), or not:
            # as the ERP spells it (Dolibarr: "1" shown, "-1" offered in the list).
            "in_list": provision.get("listed", [0, 1])[int(f.list_column)],
            "total": int(f.list_total),
            "position": position,
        }

    def retire(self, name: str) -> int:
        holders = [
            cid
            for page in self.current_values()
            for cid, values in page
            if values.get(name) not in (None, False, "")  # Odoo's false is "empty"
        ]
        if holders:
            result = self.write([Batch(tuple(holders), {name: None})])
            if result.rejected:
                cid, reason = next(iter(result.rejected.items()))
                raise ErpError(f"{self.where} refused to clear {name!r} on {cid}: {reason}")
        provision = self.mapping.data.get("provision", {})
        for view in provision.get("views", ()):
            self._drop_from_view(view, mapping.erp_name(self.field_name, name))
        old = self.definitions().get(name)
        if old is not None and "delete" in provision:
            def_id = mapping.get(old, provision["list"].get("id", "id"))
            erp = mapping.erp_name(self.definition_name, name)
            self.call(provision["delete"], {**self.vars, "def_id": def_id, "erp_name": erp})
        self._current = self._definitions = self._date_names = None
        return len(holders)

    def _drop_from_view(self, view: Mapping[str, Any], erp_name: str) -> None:
        """Take a retired field out of a view that names it (Odoo refuses to delete a
        field a view uses)."""
        compare = view["list"].get("compare", {})
        path = next((p for p, t in compare.items() if t == "{arch}"), None)
        held = self._view(view) if path is not None else None
        if held is None or path is None:
            return
        arch = str(mapping.get(held, path) or "")
        if arch and erp_name in arch:
            def_id = mapping.get(held, view["list"].get("id", "id"))
            variables = {**self.vars, "def_id": def_id, "arch": list_views.without(arch, erp_name)}
            self.call(view["update"], variables)

    def check(self, fields: Sequence[Field]) -> list[Check]:
        doctor = self.mapping.data.get("doctor", {})
        try:
            spec = self.mapping.data["tables"]["customers"]
            first = next(self.pages({**spec, "paging": {"style": "none"}}, {"limit": 1}), None)
        except ErpError as exc:
            return [Check("read", False, str(exc), exc.hint)]
        if not first and "empty" in doctor:
            out = [
                Check(
                    "read",
                    False,
                    _("{where}: no customer is visible to this API user").format(where=self.where),
                    doctor["empty"],
                )
            ]
        else:
            out = [Check("read", True, _("{where}: customers readable").format(where=self.where))]
        if self.write_spec.get("dates") == "unix" or "timezone" in self.mapping.data:
            zone, how = self.zone()
            dates = _("dates read in {zone} ({how})").format(zone=zone, how=how)
            out.append(Check("timezone", True, dates))
        out.extend(self._rights(doctor.get("rights", {})))
        out.extend(self._warning(rule) for rule in doctor.get("warnings", []))
        unmapped = sorted(set(TABLES) - set(self.mapping.data["tables"]))
        if unmapped:
            unread = _("not read from this ERP: {tables}").format(tables=", ".join(unmapped))
            out.append(Check("tables", True, unread))
        try:
            existing = self.definitions()
        except ErpError as exc:
            return [*out, Check("fields", False, str(exc), exc.hint)]
        missing = [f for f in fields if f.name not in existing]
        hint = None
        if missing:
            hint = (
                "crm-bridge fields provision"
                if self.capabilities.provisioning
                else self.mapping.data.get("manual", {}).get("instructions")
            )
        detail = _("{present}/{declared} fields present").format(
            present=len(fields) - len(missing), declared=len(fields)
        )
        if missing:
            names = [mapping.erp_name(self.definition_name, f.name) for f in missing]
            more = _(" and {n} more").format(n=len(names) - 5) if len(names) > 5 else ""
            detail += _(", missing: {names}").format(names=", ".join(names[:5])) + more
        out.append(Check("fields", not missing, detail, hint))
        provision = self.mapping.data.get("provision")
        if provision is not None and not missing:
            stale = [f.name for f, _new, old in self._plan(fields, provision, existing) if old]
            if stale:
                more = _(" and {n} more").format(n=len(stale) - 5) if len(stale) > 5 else ""
                out.append(
                    Check(
                        "definitions",
                        True,
                        _(
                            "{n} field definition(s) differ from their declaration "
                            "(label or list settings): {names}"
                        ).format(n=len(stale), names=", ".join(stale[:5]))
                        + more,
                        "crm-bridge fields provision",
                    )
                )
        return out

    def _rights(self, rights: Mapping[str, str]) -> list[Check]:
        """One page of each table ``rights`` names, read to find a right the API user
        lacks (the ERP refuses the list): failing lines that name the right."""
        readable, out = [], []
        for table, right in rights.items():
            spec = self.mapping.table(table)
            if spec is None:
                continue
            try:
                next(self.pages({**spec, "paging": {"style": "none"}}, {"limit": 1}), None)
            except ErpError as exc:
                hint = _("give the API user the right {right}").format(right=right)
                out.append(Check("rights", False, str(exc), hint))
            else:
                readable.append(table)
        if readable and not out:
            out.append(
                Check("rights", True, _("readable: {tables}").format(tables=", ".join(readable)))
            )
        return out

    def _warning(self, rule: Mapping[str, Any]) -> Check:
        """A doctor line for an ERP setting: ok, but with a hint when it is on."""
        try:
            answer = self.call(rule["request"], self.vars, rule.get("empty_statuses", ()))
        except ErpError as exc:
            return Check(
                rule["name"], True, rule.get("unreadable", f"not checked: {exc}"), rule.get("hint")
            )
        value = mapping.get(answer, rule.get("path", "")) if answer is not None else None
        if value is not None and str(value) == str(rule["equals"]):
            return Check(rule["name"], True, rule["message"], rule.get("hint"))
        return Check(rule["name"], True, "off")

    # -- writing -------------------------------------------------------------
    def encode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """crm-bridge values as the ERP takes them, under their ERP names."""
        unix = self.write_spec.get("dates") == "unix"
        as_int = self.write_spec.get("booleans") == "int"
        out: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, Decimal):
                value = float(value)
            elif isinstance(value, bool):
                value = int(value) if as_int else value
            elif isinstance(value, dt.date):
                if unix:  # the ERP's midnight: Dolibarr stores the date its PHP sees
                    zone = self.zone()[0]
                    value = int(
                        dt.datetime(value.year, value.month, value.day, tzinfo=zone).timestamp()
                    )
                else:
                    value = value.isoformat()
            out[mapping.erp_name(self.field_name, name)] = value
        return out

    def write(self, batches: Sequence[Batch]) -> WriteResult:
        result = WriteResult()
        try:
            self._write(batches, result)
        except ErpError as exc:  # what the ERP confirmed before it failed is kept
            exc.partial = result
            raise
        return result

    def _write(self, batches: Sequence[Batch], result: WriteResult) -> None:
        spec = self.write_spec
        if spec.get("mode", "merge") == "replace":
            if "multi_records" in spec:
                for batch in batches:
                    self._write_records(batch, result)
            else:
                self._each(batches, self._replace_one, result)
        elif "multi" in spec:  # customers with the same new values share one call
            groups: dict[str, tuple[list[str], Mapping[str, Any]]] = {}
            for batch in batches:
                key = "\x1f".join(f"{k}={encode(v)}" for k, v in sorted(batch.values.items()))
                groups.setdefault(key, ([], batch.values))[0].extend(batch.customer_ids)
            for ids, values in groups.values():
                self._write_multi(ids, self.encode(values), result)
        else:
            self._each(batches, self._merge_one, result)

    def _each(self, batches: Sequence[Batch], send: Any, result: WriteResult) -> None:
        """One call per customer, ``concurrent_writes`` at a time.  When the ERP fails
        (not a refusal of one record), the calls not yet sent are not sent, the ones
        in flight are waited for, and what it confirmed stays in ``result``."""
        jobs = [(cid, b.values) for b in batches for cid in b.customer_ids]
        failed = threading.Event()

        def one(job: tuple[str, Mapping[str, Any]]) -> tuple[str, str | ErpError | None]:
            """(customer, None if written, the refusal's text, or the ERP's failure)."""
            if failed.is_set():
                return job[0], SKIPPED
            try:
                send(*job)
            except RefusedError as exc:
                return job[0], str(exc)
            except ErpError as exc:
                failed.set()
                return job[0], exc
            return job[0], None

        workers = min(self.capabilities.concurrent_writes, max(len(jobs), 1))
        first: ErpError | None = None
        with ThreadPoolExecutor(workers) as pool:
            for cid, outcome in pool.map(one, jobs):
                if outcome is None:
                    result.written.append(cid)
                elif isinstance(outcome, ErpError):
                    first = first if first is not None else outcome
                elif outcome is not SKIPPED:
                    result.rejected[cid] = outcome
        if first is not None:
            raise first

    def _merge_one(self, cid: str, values: Mapping[str, Any]) -> None:
        self.call(
            self.write_spec["request"], {**self.vars, "id": cid, "values": self.encode(values)}
        )

    def _read_modified(self, cid: str, values: Mapping[str, Any]) -> Any:
        """The full record as the ERP holds it, with crm-bridge's fields changed."""
        read = self.write_spec["read"]
        answer = self.call(read, {**self.vars, "id": cid})
        record = mapping.get(answer, read.get("records", "")) if answer is not None else None
        if not isinstance(record, Mapping):
            raise RefusedError(f"{self.where} has no customer {cid}")
        record = dict(record)
        encoded = self.encode(values)
        if self.values_path:
            held = record.get(self.values_path)
            record[self.values_path] = {**(held if isinstance(held, Mapping) else {}), **encoded}
        else:
            record.update(encoded)
        return record

    def _replace_one(self, cid: str, values: Mapping[str, Any]) -> None:
        record = self._read_modified(cid, values)
        self.call(self.write_spec["request"], {**self.vars, "id": cid, "record": record})

    def _write_records(self, batch: Batch, result: WriteResult) -> None:
        """Replace mode with a multi-record update: read each, send them together."""
        records, ids = [], []
        for cid in batch.customer_ids:
            try:
                records.append(self._read_modified(cid, batch.values))
                ids.append(cid)
            except RefusedError as exc:
                result.rejected[cid] = str(exc)
        if ids:
            self._send_records(ids, records, result)

    def _send_records(self, ids: list[str], records: list[Any], result: WriteResult) -> None:
        try:
            self.call(self.write_spec["multi_records"], {**self.vars, "records": records})
        except RefusedError as exc:
            if len(ids) == 1:
                result.rejected[ids[0]] = str(exc)
                return
            mid = len(ids) // 2
            self._send_records(ids[:mid], records[:mid], result)
            self._send_records(ids[mid:], records[mid:], result)
            return
        result.written.extend(ids)

    def _write_multi(self, ids: Sequence[str], values: dict[str, Any], result: WriteResult) -> None:
        """One call for customers sharing values; a refusal is split until isolated."""
        keys = [_key(i) for i in ids]
        try:
            self.call(self.write_spec["multi"], {**self.vars, "ids": keys, "values": values})
        except RefusedError as exc:
            if len(ids) == 1:
                result.rejected[ids[0]] = str(exc)
                return
            mid = len(ids) // 2
            self._write_multi(ids[:mid], values, result)
            self._write_multi(ids[mid:], values, result)
            return
        result.written.extend(ids)


SKIPPED = "(not sent: the ERP failed first)"


def _differs(record: Any, compare: Mapping[str, Any], variables: Mapping[str, Any]) -> bool:
    """Whether ``record`` holds other values than ``compare`` ({path in the record:
    template}) renders: compared as text (ERPs send numbers as strings), an XML
    arch whitespace aside, a missing value as empty."""
    for path, template in compare.items():
        want, held = (
            _as_text(mapping.render(template, variables)),
            _as_text(mapping.get(record, path)),
        )
        if want.startswith("<") and held.startswith("<"):
            if not list_views.same(want, held):
                return True
        elif want != held:
            return True
    return False


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _since(spec: Mapping[str, Any], since: dt.datetime, zone: dt.tzinfo = dt.UTC) -> dict[str, Any]:
    """The table spec narrowed to what changed since: the ``incremental`` params are
    added to the request's, its ``domain`` terms appended to the body's domain.

    ``since`` is UTC without a zone; a ``local`` rule's ERP compares the text as its
    own local time, so it is given in ``zone`` (Dolibarr's database compares
    ``t.tms`` in its session's zone: UTC text would be hours late west of Greenwich
    and miss what changed in between)."""
    rule = spec["incremental"]
    here = since.replace(tzinfo=dt.UTC).astimezone(zone).replace(tzinfo=None)
    formats = {
        "iso": here.isoformat(timespec="seconds"),
        "sql": here.strftime("%Y-%m-%d %H:%M:%S"),
        "unix": int(since.replace(tzinfo=dt.UTC).timestamp()),
    }
    value = formats[rule.get("format", "sql")]
    request = dict(spec["request"])
    if "params" in rule:
        request["params"] = {
            **request.get("params", {}),
            **mapping.render(rule["params"], {"since": value}),
        }
    if "domain" in rule:  # a copy of the body with the terms appended to its domain list
        body = copy.deepcopy(request.get("body", {}))
        terms = mapping.get(body, rule.get("domain_path", "domain"))
        terms.extend(mapping.render(rule["domain"], {"since": value}))
        request["body"] = body
    return {**spec, "request": request}


def _key(cid: str) -> Any:
    """A customer id as the ERP's API wants it: a number when it is one."""
    return int(cid) if cid.isdigit() else cid


def _zone_info(name: str, who: str = "erp.timezone is") -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{who} {name!r}, which is not a timezone name",
            hint="set erp.timezone to an IANA name such as Europe/Brussels or UTC",
        ) from None
