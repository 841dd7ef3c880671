"""The Tryton adapter's write path: one conditional call, refused records isolated."""

from __future__ import annotations

import json

import responses
from crm_bridge.adapters.tryton.adapter import TrytonAdapter

from crm_bridge.adapter import Batch

URL = "http://erp.test:8000"
RPC = f"{URL}/db/rpc/"
SETTINGS = {"url": URL, "database": "db", "username": "admin", "password": "pw"}


def test_one_call_for_many_batches_and_refused_records_are_isolated() -> None:
    writes: list[list] = []

    def server(request):
        body = json.loads(request.body)
        method = body["method"]
        if method == "common.db.login":
            return 200, {}, json.dumps({"id": 1, "result": [1, "key"]})
        if method == "model.res.user.get_preferences":
            return 200, {}, json.dumps({"id": 1, "result": {"company": 1}})
        assert method == "model.party.party.crm_apply"
        (changes,) = body["params"][:-1]
        writes.append(changes)
        if 13 in [party for party, _, _ in changes]:
            error = ["UserError", ['CRM field "x" on party "13" does not allow the value.']]
            return 200, {}, json.dumps({"id": 1, "error": error})
        return 200, {}, json.dumps({"id": 1, "result": [[12, "x", "edited"]]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, RPC, callback=server)
        adapter = TrytonAdapter(SETTINGS, sleep=lambda s: None)
        batches = [
            Batch(("11", "12", "13", "14"), {"x": "a"}, {"x": None}),
            Batch(("15",), {"x": None}, {"x": "b"}),
        ]
        result = adapter.write(batches)
    assert writes[0] == [
        [11, {"x": "a"}, {"x": None}],
        [12, {"x": "a"}, {"x": None}],
        [13, {"x": "a"}, {"x": None}],
        [14, {"x": "a"}, {"x": None}],
        [15, {"x": None}, {"x": "b"}],
    ]
    assert sorted(result.written) == ["11", "12", "14", "15"]
    assert list(result.rejected) == ["13"]
    assert "does not allow the value" in result.rejected["13"]
    # The server's conflicts come back per customer (from each call that had one).
    assert result.conflicts == {"12": {"x": "edited"}}
    assert len(writes) < 10
