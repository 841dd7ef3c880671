"""The headline fields (``list_column``) as view definitions an ERP takes whole.

Where an ERP's customer list is a view record (Odoo's ``ir.ui.view``), crm-bridge
provisions one inherited view per kind that adds its headline fields, built here
from the field declarations; a mapping names the builder in
``[[provision.views]] arch``.  The views are rebuilt from the declarations on each
``fields provision``, so a headline field declared by a plugin shows without a
release of anything.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

from crm_bridge import mapping
from crm_bridge.fields import Field
from crm_bridge.topics import reading_order


def odoo_list(fields: Sequence[Field], field_name: str) -> str:
    """An inherited res.partner list view: one optional column per headline field,
    topic by topic (``sum`` on the totalled ones).  ``expr="."`` is the inherited view's root,
    ``<list>`` in Odoo 18+ and ``<tree>`` before, so one arch fits both."""
    xpath = _xpath()
    for f in reading_order(fields):
        if f.list_column:
            attrs = {"name": mapping.erp_name(field_name, f.name), "optional": "show"}
            if f.list_total:
                attrs["sum"] = f"Total {f.label}"
            ET.SubElement(xpath, "field", attrs)
    return _text(xpath)


def odoo_search(fields: Sequence[Field], field_name: str) -> str:
    """An inherited res.partner search view: the headline fields searchable from the
    search bar (a selection by its labels), then one *Group By* entry per headline
    selection, under a separator."""
    xpath = _xpath()
    headline = [f for f in reading_order(fields) if f.list_column]
    for f in headline:
        ET.SubElement(xpath, "field", {"name": mapping.erp_name(field_name, f.name)})
    groups = [f for f in headline if f.type == "selection"]
    if groups:
        ET.SubElement(xpath, "separator")
        for f in groups:
            name = mapping.erp_name(field_name, f.name)
            ET.SubElement(
                xpath,
                "filter",
                {
                    "name": f"group_{name}",
                    "string": f.label,
                    "context": f"{{'group_by': '{name}'}}",
                },
            )
    return _text(xpath)


def without(arch: str, erp_name: str) -> str:
    """``arch`` without the elements that name field ``erp_name`` (a retired field)."""
    root = ET.fromstring(arch)
    mention = re.compile(rf"\b{re.escape(erp_name)}\b")
    for parent in root.iter():
        for child in list(parent):
            if any(mention.search(v) for v in child.attrib.values()):
                parent.remove(child)
    return ET.tostring(root, encoding="unicode")


def same(a: str, b: str) -> bool:
    """Whether two arches are the same XML, whitespace between elements aside."""
    return _squeeze(a) == _squeeze(b)


def _squeeze(arch: str) -> str:
    return re.sub(r">\s+<", "><", arch.strip())


def _xpath() -> ET.Element:
    return ET.Element("xpath", {"expr": ".", "position": "inside"})


def _text(xpath: ET.Element) -> str:
    data = ET.Element("data")
    data.append(xpath)
    return ET.tostring(data, encoding="unicode")


ARCHES: dict[str, Callable[[Sequence[Field], str], str]] = {
    "odoo_list": odoo_list,
    "odoo_search": odoo_search,
}
