"""The accountant's CRM menu in Tryton: the Customers list and the Segments graphs.

Their columns are fields of ``party.party`` reading keys out of the ``crm``
dict in SQL (searchable, sortable); these tests hold them to the values the
dict holds, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_bridge.plugin_manager import load_plugins
from crm_bridge.topics import SEQUENCES

from .conftest import Tryton
from .test_end_to_end import _provisioned_sync

TABS = [
    ("All", None),
    ("Champions", lambda v: v.get("rfm_segment") == "champions"),
    ("At risk", lambda v: v.get("rfm_segment") == "at_risk"),
    ("Can't lose / Lost", lambda v: v.get("rfm_segment") in {"cant_lose", "lost"}),
    ("Gold and Silver", lambda v: v.get("loyalty_tier") in {"gold", "silver"}),
    ("Overdue", lambda v: v.get("kpi_overdue_amount", 0) > 0),
]


def _view(tryton: Tryton, name: str) -> int:
    """The id of the module's view ``view/<name>.xml``."""
    rows = tryton.rpc(
        "model.ir.ui.view.search_read",
        [("module", "=", "crm_bridge"), ("name", "=", name)],
        0,
        None,
        None,
        ["id"],
    )
    assert len(rows) == 1, name
    return int(rows[0]["id"])


def _action(tryton: Tryton, name: str) -> dict[str, Any]:
    """The party window action called ``name`` (the menu entry's)."""
    actions = tryton.rpc(
        "model.ir.action.act_window.search_read",
        [("name", "=", name), ("res_model", "=", "party.party")],
        0,
        None,
        None,
        ["pyson_domain", "pyson_order", "act_window_views"],
    )
    assert len(actions) == 1, name
    return dict(actions[0])


def _synced(tryton: Tryton, tmp_path: Path) -> dict[str, dict]:
    result = _provisioned_sync(tryton.config(tmp_path / "crm-bridge.toml"))
    assert result.status == "ok", result.rejections
    return {code: v for code, v in tryton.rpc.crm_values().items() if v}


def _descending(values: list[Decimal | None]) -> bool:
    """Largest first, numerically; the empty ones together at one end."""
    numbers = [v for v in values if v is not None]
    ends = values[: len(numbers)] == numbers or values[-len(numbers) :] == numbers
    return bool(numbers) and ends and numbers == sorted(numbers, reverse=True)


def test_customer_tabs_hold_what_the_dict_holds(tryton_db: Tryton, tmp_path: Path) -> None:
    tryton = tryton_db
    held = _synced(tryton, tmp_path)
    action = _action(tryton, "Customers")
    base = json.loads(action["pyson_domain"])
    order = json.loads(action["pyson_order"])
    assert order[0] == ["crm_revenue_12m", "DESC"]
    tabs = tryton.rpc(
        "model.ir.action.act_window.domain.search_read",
        [("act_window", "=", action["id"])],
        0,
        None,
        [("sequence", "ASC")],
        ["name", "domain"],
    )
    assert [t["name"] for t in tabs] == [name for name, _ in TABS]
    for tab, (name, keep) in zip(tabs, TABS, strict=True):
        domain = [*base, *(json.loads(tab["domain"]) if tab["domain"] else [])]
        rows = tryton.rpc(
            "model.party.party.search_read",
            domain,
            0,
            None,
            [["crm_revenue_12m", "DESC"], ["id", "ASC"]],
            ["code", "crm_revenue_12m", "crm_rfm_segment", "crm_loyalty_tier"],
        )
        # Customers: the parties crm-bridge gave an RFM segment (they bought).
        expected = {c for c, v in held.items() if "rfm_segment" in v and (not keep or keep(v))}
        assert expected, name  # the demo data has customers on every tab
        codes = [r["code"] for r in rows]
        assert set(codes) == expected, name
        revenues = [r["crm_revenue_12m"] for r in rows]
        assert revenues == [held[c].get("kpi_revenue_12m") for c in codes], name
        assert _descending(revenues), name


def test_columns_search_like_the_dict_keys(tryton_db: Tryton, tmp_path: Path) -> None:
    """A column searched or sorted returns what a search on the dict key returns."""
    tryton = tryton_db
    held = _synced(tryton, tmp_path)

    def codes(domain: list, order: list | None = None) -> list[str]:
        rows = tryton.rpc("model.party.party.search_read", domain, 0, None, order, ["code"])
        return [r["code"] for r in rows]

    at_risk = codes([("crm_rfm_segment", "=", "at_risk")], [("crm_revenue_12m", "DESC")])
    direct = codes([("crm.rfm_segment", "=", "at_risk")], [("crm.kpi_revenue_12m", "DESC")])
    assert at_risk and set(at_risk) == set(direct)
    assert _descending([held[c].get("kpi_revenue_12m") for c in at_risk])
    for column, key in [("crm_loyalty_tier", "loyalty_tier"), ("crm_abc_xyz", "abc_xyz")]:
        for value in {v[key] for v in held.values() if key in v}:
            assert set(codes([(column, "=", value)])) == set(codes([(f"crm.{key}", "=", value)]))
    assert set(codes([("crm_next_best_offer", "!=", None)])) == {
        c for c, v in held.items() if "next_best_offer" in v
    }
    # Numbers compare as numbers (the dict stores a Decimal as {"decimal": "..."}).
    revenues = sorted(v["kpi_revenue_12m"] for v in held.values() if "kpi_revenue_12m" in v)
    middle = revenues[len(revenues) // 2]
    assert set(codes([("crm_revenue_12m", ">=", middle)])) == {
        c for c, v in held.items() if v.get("kpi_revenue_12m", middle - 1) >= middle
    }
    assert set(codes([("crm_avg_days_late", ">", 10)])) == {
        c for c, v in held.items() if v.get("kpi_avg_days_late", 0) > 10
    }
    churn = codes([("crm_churn_risk", "!=", None)], [("crm_churn_risk", "ASC"), ("id", "ASC")])
    values = [held[c]["kpi_churn_risk"] for c in churn]
    assert values and values == sorted(values)
    assert set(churn) == {c for c, v in held.items() if "kpi_churn_risk" in v}


def test_views_load_and_the_crm_tab_is_in_topic_order(tryton_db: Tryton, tmp_path: Path) -> None:
    tryton = tryton_db
    _synced(tryton, tmp_path)
    fields = load_plugins().fields()
    view = tryton.rpc("model.party.party.fields_view_get", _view(tryton, "party_crm_list"), "tree")
    assert view["type"] == "tree"
    assert {"crm_rfm_segment", "crm_revenue_12m", "crm_next_best_offer"} <= set(view["fields"])
    segment = view["fields"]["crm_rfm_segment"]
    assert segment["searchable"] and segment["sortable"]
    # The choices, with the labels the filter bar searches by, come from the
    # provisioned definition (the client asks the method named in the field).
    choices = tryton.rpc(f"model.party.party.{segment['selection']}")
    assert choices == [[None, ""], *map(list, fields["rfm_segment"].choices)]
    assert view["fields"]["crm_revenue_12m"]["sortable"]
    for name, x, title in [
        ("rfm_segment", "crm_rfm_segment", "Customers per RFM Segment"),
        ("revenue_abc", "crm_abc_class", "Revenue per ABC Class"),
        ("loyalty_tier", "crm_loyalty_tier", "Customers per Loyalty Tier"),
    ]:
        graph_id = _view(tryton, f"party_crm_graph_{name}")
        graph = tryton.rpc("model.party.party.fields_view_get", graph_id, "graph")
        assert graph["type"] == "graph" and x in graph["fields"], name
        views = tryton.rpc(
            "model.ir.action.act_window.view.read",
            _action(tryton, title)["act_window_views"],
            ["view"],
        )
        assert views[0]["view"] == graph_id, name
    crm = tryton.rpc("model.ir.ui.menu.search", [("name", "=", "CRM"), ("parent", "=", None)])
    assert len(crm) == 1
    menus = tryton.rpc(
        "model.ir.ui.menu.search_read",
        [("parent", "child_of", crm)],
        0,
        None,
        None,
        ["complete_name"],
    )
    assert {m["complete_name"] for m in menus} == {
        "CRM",
        "CRM / Customers",
        "CRM / Segments",
        "CRM / Segments / Customers per RFM Segment",
        "CRM / Segments / Revenue per ABC Class",
        "CRM / Segments / Customers per Loyalty Tier",
    }
    keys = tryton.rpc("model.crm_bridge.field.search_get_keys", [], None)
    by_sequence = [k["name"] for k in sorted(keys, key=lambda k: (k["sequence"], k["name"]))]
    assert by_sequence == sorted(fields, key=lambda n: SEQUENCES[n])
    assert by_sequence[:2] == ["rfm_segment", "abc_xyz"]
