"""The companion Tryton module refuses, on the server, what crm-bridge must never store.

Each refusal of ``trytond_crm_bridge`` (an undeclared key, a value of the wrong type,
a choice the key does not declare, a stale expected value in ``crm_apply``) is sent
to a real Tryton with plain JSON-RPC — ``party.party.write`` and ``create`` as any
client could, and ``party.party.crm_apply`` as crm-bridge does — and the test then
reads the parties back raw: the refusal names the key and the party, and nothing
changed (neither the refused party's dict nor its ``write_date``, nor another
party's in the same call, and no party was created).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import Tryton
from .test_sync_engine import _provision

# What a party holds before each refused write: one value of every key type used below.
BEFORE: dict[str, Any] = {
    "rfm_segment": "champions",
    "kpi_revenue_12m": Decimal("1234.50"),
    "loyalty_points": 120,
    "loyalty_next_expiry": dt.date(2026, 7, 15),
    "next_best_offer": "Bolt",
}


def _parties(tryton: Tryton, ids: list[int]) -> dict[int, tuple[dict[str, Any], Any]]:
    """Each party's crm dict and write_date, read raw."""
    rows = tryton.rpc("model.party.party.read", ids, ["crm", "write_date"])
    return {r["id"]: (r["crm"] or {}, r["write_date"]) for r in rows}


def _hold_before(tryton: Tryton, tmp_path: Path) -> list[int]:
    """Two parties holding BEFORE, the fields provisioned (the declared keys)."""
    _provision(tryton.config(tmp_path / "crm-bridge.toml"))
    ids = sorted(tryton.rpc.party_ids().values())[-2:]  # customers (the first is the company)
    tryton.rpc("model.party.party.write", ids, {"crm": BEFORE})
    held = _parties(tryton, ids)
    assert all(crm == BEFORE for crm, _ in held.values()), held
    return ids


@pytest.fixture
def parties(tryton: Tryton, tmp_path: Path) -> list[int]:
    return _hold_before(tryton, tmp_path)


def _send(tryton: Tryton, method: str, ids: list[int], crm: dict[str, Any]) -> str:
    """Send ``crm`` for the first party (the second gets a valid change in the same
    call) and return the server's refusal as text; fail if it was accepted."""
    good = {**BEFORE, "loyalty_points": 999}
    new = ["Accepted new party", "Refused new party"]
    if method == "write":
        args: tuple[Any, ...] = ([ids[1]], {"crm": good}, [ids[0]], {"crm": {**BEFORE, **crm}})
    elif method == "create":  # two new parties, the second refused: neither is created
        args = ([{"name": new[0], "crm": good}, {"name": new[1], "crm": {**BEFORE, **crm}}],)
    else:
        args = ([[ids[1], {"loyalty_points": 999}, {}], [ids[0], crm, {}]],)
    try:
        result = tryton.rpc(f"model.party.party.{method}", *args)
    except RuntimeError as exc:  # the JSON-RPC error member: [kind, [message, ...]]
        kind, (message, *_) = exc.args[0]
        assert kind == "UserError", exc.args[0]
        if method == "create":
            assert new[1] in message, message
            assert tryton.rpc("model.party.party.search_count", [("name", "in", new)]) == 0
        else:
            name = tryton.rpc("model.party.party.read", [ids[0]], ["rec_name"])[0]["rec_name"]
            assert f'on party "{name}"' in message, message
        return str(message)
    raise AssertionError(f"{method} of {crm!r} was accepted: {result!r}")


METHODS = ("write", "create", "crm_apply")


@pytest.mark.parametrize("method", METHODS)
def test_an_undeclared_key_is_refused_and_nothing_changes(
    tryton: Tryton, parties: list[int], method: str
) -> None:
    before = _parties(tryton, parties)
    refusal = _send(tryton, method, parties, {"no_such_field": 1})
    assert 'CRM field "no_such_field"' in refusal and "is not declared" in refusal
    assert _parties(tryton, parties) == before


# key, a value of the wrong type for it, the key's declared type
WRONG_TYPES = [
    ("kpi_revenue_12m", "1234.50", "numeric"),  # a number as text
    ("kpi_revenue_12m", True, "numeric"),  # a boolean is no number
    ("loyalty_points", 12.5, "integer"),
    ("loyalty_points", False, "integer"),
    ("loyalty_next_expiry", "2026-07-15", "date"),  # a date as text
    ("loyalty_next_expiry", dt.datetime(2026, 7, 15, 9, 30), "date"),  # a timestamp
    ("rfm_segment", 3, "selection"),
    ("next_best_offer", 42, "char"),
]


@pytest.mark.parametrize("method", METHODS)
def test_a_value_of_the_wrong_type_is_refused_and_nothing_changes(
    tryton: Tryton, parties: list[int], method: str
) -> None:
    before = _parties(tryton, parties)
    for key, value, type_ in WRONG_TYPES:
        refusal = _send(tryton, method, parties, {key: value})
        assert f'CRM field "{key}"' in refusal, (key, value, refusal)
        assert f"expects a value of type {type_}" in refusal, (key, value, refusal)
        assert _parties(tryton, parties) == before, (key, value)


@pytest.mark.parametrize("method", METHODS)
def test_a_choice_the_key_does_not_declare_is_refused_and_nothing_changes(
    tryton: Tryton, parties: list[int], method: str
) -> None:
    before = _parties(tryton, parties)
    for key, value in (("rfm_segment", "vip"), ("rfm_segment", "Champions"), ("abc_class", "D")):
        refusal = _send(tryton, method, parties, {key: value})
        assert f'CRM field "{key}"' in refusal, refusal
        assert f"does not allow the value {value!r}" in refusal, refusal
        assert _parties(tryton, parties) == before, (key, value)


def test_crm_apply_leaves_a_key_that_holds_another_value_than_expected(
    tryton: Tryton, parties: list[int]
) -> None:
    """Someone edited the key since crm-bridge read it: that key is not changed and comes
    back as a conflict with the value found; the party's other keys are applied."""
    first, second = parties
    before = _parties(tryton, parties)
    conflicts = tryton.rpc(
        "model.party.party.crm_apply",
        [
            [first, {"rfm_segment": "lost", "loyalty_points": 7}, {"rfm_segment": "at_risk"}],
            [second, {"rfm_segment": "lost"}, {"rfm_segment": "champions"}],
        ],
    )
    assert conflicts == [[first, "rfm_segment", "champions"]]
    after = _parties(tryton, parties)
    assert after[first][0] == {**BEFORE, "loyalty_points": 7}
    assert after[second][0] == {**BEFORE, "rfm_segment": "lost"}
    assert after[second][1] != before[second][1]  # written, its stamp moved

    # A stale expectation on every key: the party is not written at all.
    stamp = after[first][1]
    conflicts = tryton.rpc(
        "model.party.party.crm_apply",
        [[first, {"loyalty_points": 8}, {"loyalty_points": 120}]],
    )
    assert conflicts == [[first, "loyalty_points", 7]]
    assert _parties(tryton, [first])[first] == (after[first][0], stamp)


def test_the_refusals_hold_on_postgresql_too(tryton_pg: Tryton, tmp_path: Path) -> None:
    """PostgreSQL stores the dict as JSON too: the module checks before either backend."""
    ids = _hold_before(tryton_pg, tmp_path)
    before = _parties(tryton_pg, ids)
    for method in METHODS:
        assert "is not declared" in _send(tryton_pg, method, ids, {"no_such_field": 1})
        assert "expects a value of type numeric" in _send(
            tryton_pg, method, ids, {"kpi_revenue_12m": "1234.50"}
        )
        assert "does not allow the value 'vip'" in _send(
            tryton_pg, method, ids, {"rfm_segment": "vip"}
        )
    assert _parties(tryton_pg, ids) == before
