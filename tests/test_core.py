"""Core units: field checks, plan and batching, config, the JSON-RPC client's retries."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from crm_bridge.adapters.tryton.rpc import TrytonRPC

from crm_bridge import config as config_mod
from crm_bridge.adapter import Batch
from crm_bridge.compute import PluginOutput
from crm_bridge.errors import AuthenticationError, ConfigError, RetriableErpError
from crm_bridge.fields import Field
from crm_bridge.plan import chunk, make_plan
from crm_bridge.validate import validate

SEG = Field("seg", "selection", "Segment", choices=[("a", "A"), ("b", "B")], owner="p")
AMT = Field("amt", "numeric", "Amount", minimum=0, owner="p")
FIELDS = {"seg": SEG, "amt": AMT}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (SEG, "c", "'c' is not one of its choices"),
        (SEG, 1, "expects selection, got int"),
        (AMT, -1, "below the minimum 0"),
        (AMT, True, "expects numeric, got bool"),
        (AMT, float("nan"), "NaN"),
        (Field("day", "date", "D"), dt.datetime(2026, 1, 1), "expects date"),
    ],
)
def test_field_check_rejects(field: Field, value: object, problem: str) -> None:
    assert problem in (field.check(value) or "")


def test_field_check_accepts_and_normalises() -> None:
    assert SEG.check("a") is None and AMT.check(Decimal("2.5")) is None and AMT.check(None) is None
    assert AMT.normalize(1.005) == Decimal("1.00") and AMT.normalize(2) == Decimal("2.00")
    with pytest.raises(ValueError, match="needs choices"):
        Field("x1", "selection", "X")


def test_validate_rejects_a_plugin_wholesale_and_keeps_others() -> None:
    import polars as pl

    good = PluginOutput("p", pl.DataFrame({"customer_id": ["1"], "seg": ["a"]}), None, 0)
    other = Field("z9", "char", "Z", owner="q")
    bad = PluginOutput("q", pl.DataFrame({"customer_id": ["1"], "seg": ["b"]}), None, 0)
    crashed = PluginOutput("r", None, "raised KeyError: 'x'", 0)
    known = pl.Series(["1"])
    desired, rejections = validate([good, bad, crashed], {**FIELDS, "z9": other}, known)
    assert desired.rows({**FIELDS, "z9": other}) == {"1": {"seg": "a"}}
    assert [(r.plugin, r.reason) for r in rejections] == [
        ("q", "it returned the field 'seg', which it did not declare"),
        ("r", "raised KeyError: 'x'"),
    ]
    # Ids of the output and of the snapshot, text or dictionary-encoded, in any mix.
    for ours, theirs in itertools.product((pl.String, pl.Categorical), repeat=2):

        def reason(ids: list[str | None], ours: type = ours, theirs: type = theirs) -> str | None:
            frame = pl.DataFrame({"customer_id": ids, "seg": ["a"] * len(ids)})
            out = PluginOutput("p", frame.cast({"customer_id": ours}), None, 0)
            rejected = validate([out], FIELDS, pl.Series(["1", "2"], dtype=theirs))[1]
            return rejected[0].reason if rejected else None

        assert reason(["2", "1"]) is None
        assert reason(["1", "9", "8"]) == "its output names 2 unknown customer(s), e.g. '8'"
        assert reason(["1", None]) == "its output names 1 unknown customer(s), e.g. None"
        assert reason(["1", "1"]) == "its output has several rows for one customer"
    for column, values, problem in [
        ("seg", ["c"], "field 'seg' for customer '1': 'c' is not one of its choices"),
        ("amt", [-2.0], "field 'amt' for customer '1': -2.0 is below the minimum 0"),
        ("amt", [float("nan")], "is not a number (NaN)"),
        ("amt", ["7"], "field 'amt' for customer '1': expects numeric, got str '7'"),
    ]:
        frame = pl.DataFrame({"customer_id": ["1"], column: values})
        reason = validate([PluginOutput("p", frame, None, 0)], FIELDS, known)[1][0].reason
        assert problem in reason


def test_plan_sends_only_changed_keys_with_the_values_it_saw() -> None:
    desired = {
        "1": {"seg": "a", "amt": Decimal("5.00")},
        "2": {"seg": "a", "amt": Decimal("5.00")},
        "3": {"seg": "b", "amt": Decimal("9.00")},
        "4": {"seg": "a", "amt": Decimal("1.00")},
        "5": {"seg": "a", "amt": Decimal("5.00")},
    }
    current = {
        "1": {"seg": "b", "amt": Decimal("5.00"), "old_plugin_field": 7},
        "3": {"seg": "b", "amt": Decimal("9.00")},
        "4": {"seg": "a", "amt": Decimal("1.000")},
        "5": {"seg": "b", "amt": Decimal("5.00")},
    }
    plan = make_plan(desired, current, FIELDS)
    assert [(c.customer_id, c.field, c.old, c.new) for c in plan.changes] == [
        ("1", "seg", "b", "a"),
        ("2", "amt", None, Decimal("5.00")),
        ("2", "seg", None, "a"),
        ("5", "seg", "b", "a"),
    ]
    # Only the keys that change travel (a disabled plugin's key is not even sent),
    # each with the value the plan saw; the same change is one batch.
    assert {b.customer_ids: (dict(b.values), dict(b.expected)) for b in plan.batches} == {
        ("1", "5"): ({"seg": "a"}, {"seg": "b"}),
        ("2",): ({"amt": Decimal("5.00"), "seg": "a"}, {"amt": None, "seg": None}),
    }


def test_plan_clears_what_no_longer_applies_and_only_for_plugins_that_ran() -> None:
    last = Field("last", "date", "Last seen", keep_last_value=True, owner="q")
    fields = {**FIELDS, "last": last}
    current = {
        "1": {"seg": "a", "amt": Decimal("1.00"), "last": dt.date(2026, 1, 1)},
        "2": {"seg": "b", "amt": Decimal("2.00")},  # no row in the output at all
        "3": {"seg": "b", "amt": Decimal("3.00")},  # a customer not read this run
    }
    desired = {"1": {"seg": "a", "amt": None, "last": None}}
    plan = make_plan(desired, current, fields, ran={"seg", "amt", "last"}, customers={"1", "2"})
    assert [(c.customer_id, c.field, c.old, c.new) for c in plan.changes] == [
        ("1", "amt", Decimal("1.00"), None),
        ("2", "amt", Decimal("2.00"), None),
        ("2", "seg", "b", None),
    ]
    assert plan.cleared == 3
    # A plugin that did not run (or was rejected): its fields are left alone.
    assert not make_plan({}, current, fields, ran=set(), customers={"1", "2"}).changes
    only_seg = make_plan({}, current, fields, ran={"seg"}, customers={"1", "2"})
    assert {(c.customer_id, c.field) for c in only_seg.changes} == {("1", "seg"), ("2", "seg")}


def test_chunk_caps_customers_per_call() -> None:
    batches = [Batch(tuple(str(i) for i in range(5)), {"x": 1}), Batch(("a", "b"), {"x": 2})]
    calls = chunk(batches, 3)
    assert [[b.customer_ids for b in call] for call in calls] == [
        [("0", "1", "2")],
        [("3", "4"), ("a",)],
        [("b",)],
    ]


def test_config_interpolates_env_and_redacts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ERP_PW", "s3cret-value")
    path = tmp_path / "c.toml"
    path.write_text('[erp]\nadapter = "x"\npassword = "pre-${ERP_PW}"\n')
    cfg = config_mod.load(path)
    assert cfg.erp["password"] == "pre-s3cret-value"
    assert cfg.redact("login with s3cret-value failed") == "login with *** failed"
    path.write_text('[erp]\nadapter = "x"\n[state]\npath = 3\n')
    with pytest.raises(ConfigError, match=r"config key state\.path: 3 is not of type 'string'"):
        config_mod.load(path)


URL = "http://erp.test:8000"
RPC = f"{URL}/db/rpc/"


def _login_ok(rsps: responses.RequestsMock) -> None:
    rsps.post(RPC, json={"id": 1, "result": [1, "key"]})
    rsps.post(RPC, json={"id": 2, "result": {"company": 1}})


def test_rpc_retries_5xx_and_honours_retry_after() -> None:
    slept: list[float] = []
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as rsps:
        _login_ok(rsps)
        rsps.post(RPC, status=500)
        rsps.post(RPC, status=429, headers={"Retry-After": "7"})
        rsps.post(
            RPC,
            json={
                "id": 5,
                "result": [
                    {"__class__": "Decimal", "decimal": "1.50"},
                    {"__class__": "date", "year": 2026, "month": 2, "day": 3},
                ],
            },
        )
        rpc = TrytonRPC(URL, "db", "admin", "pw", sleep=slept.append)
        assert rpc.call("model.x.read") == [Decimal("1.50"), dt.date(2026, 2, 3)]
        assert rsps.calls[0].request.headers.get("Authorization") is None
        assert rsps.calls[2].request.headers["Authorization"].startswith("Session ")
        assert len(rsps.calls) == 5
    assert slept[1] == 7.0 and len(slept) == 2


def test_rpc_relogins_on_401_and_gives_up_on_bad_password() -> None:
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as rsps:
        _login_ok(rsps)
        rsps.post(RPC, status=401)
        _login_ok(rsps)
        rsps.post(RPC, json={"id": 9, "result": 42})
        rpc = TrytonRPC(URL, "db", "admin", "pw", sleep=lambda s: None)
        assert rpc.call("model.x.y") == 42
    with responses.RequestsMock() as rsps:
        rsps.post(RPC, status=401)
        with pytest.raises(AuthenticationError, match="rejected the login"):
            TrytonRPC(URL, "db", "admin", "bad", sleep=lambda s: None).login()


def test_rpc_gives_up_after_bounded_attempts() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(RPC, status=503)
        rpc = TrytonRPC(URL, "db", "admin", "pw", sleep=lambda s: None)
        with pytest.raises(RetriableErpError, match="HTTP 503"):
            rpc.login()
        assert len(rsps.calls) == 5


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "erp-password"
    secret.write_text("file-s3cret\n")
    secret.chmod(0o644)
    path = tmp_path / "c.toml"
    path.write_text(f'[erp]\nadapter = "x"\npassword = "${{file:{secret}}}"\n')
    with pytest.raises(ConfigError, match="is readable by other users") as info:
        config_mod.load(path)
    assert info.value.hint == f"chmod 600 {secret}"
    secret.chmod(0o600)
    cfg = config_mod.load(path)
    assert cfg.erp["password"] == "file-s3cret"
    assert cfg.redact("password file-s3cret rejected") == "password *** rejected"


def test_turning_tls_verification_off_warns() -> None:
    with pytest.warns(UserWarning, match="TLS certificate verification is OFF"):
        TrytonRPC("https://erp.test", "db", "admin", "pw", verify=False)


def test_plan_reports_drift_and_keeps_it_where_the_policy_says_so() -> None:
    desired = {"1": {"seg": "a", "amt": Decimal("5.00")}}
    previous = {"1": {"seg": "a", "amt": Decimal("5.00")}}
    current = {"1": {"seg": "b", "amt": Decimal("7.00")}}  # both edited by hand
    plan = make_plan(desired, current, FIELDS, previous, keep=frozenset({"seg"}))
    assert plan.drift == [("1", "amt", Decimal("5.00"), Decimal("7.00")), ("1", "seg", "a", "b")]
    assert [(c.field, c.old, c.new) for c in plan.changes] == [
        ("amt", Decimal("7.00"), Decimal("5.00"))
    ]
    assert [dict(b.values) for b in plan.batches] == [{"amt": Decimal("5.00")}]
    overwrite = make_plan(desired, current, FIELDS, previous)
    assert [c.field for c in overwrite.changes] == ["amt", "seg"]
    # Drift is claimed only for values read back this run.
    assert not make_plan(desired, current, FIELDS, previous, reread=set()).drift


def test_a_value_cleared_by_hand_is_drift_and_kept_under_keep() -> None:
    desired = {"1": {"seg": "a", "amt": Decimal("5.00")}}
    previous = {"1": {"seg": "a", "amt": Decimal("5.00")}}
    current: dict[str, dict[str, object]] = {"1": {}}  # the person emptied the field
    kept = make_plan(desired, current, FIELDS, previous, keep=frozenset({"seg", "amt"}))
    assert sorted(kept.drift) == [("1", "amt", Decimal("5.00"), None), ("1", "seg", "a", None)]
    assert not kept.changes
    put_back = make_plan(desired, current, FIELDS, previous)
    assert len(put_back.drift) == 2 and [c.field for c in put_back.changes] == ["amt", "seg"]


def test_plan_compares_values_as_stored() -> None:
    desired = {"1": {"seg": "a", "amt": Decimal("5.00")}}
    # Read back as the ERP gives it (5, 5.0): the same stored value, nothing to write.
    for erp in (Decimal("5"), 5.0, "5.000"):
        assert not make_plan(desired, {"1": {"seg": "a", "amt": erp}}, FIELDS).changes
    # Written with other decimals before (the field's digits changed): not a hand edit.
    assert not make_plan(desired, desired, FIELDS, {"1": {"amt": Decimal("5.0")}}).drift
    # A value of another type is another value, even when Python calls them equal.
    flag = Field("flag", "char", "Flag", owner="p")
    changed = make_plan({"1": {"flag": "1"}}, {"1": {"flag": 1}}, {"flag": flag}).changes
    assert [(c.old, c.new) for c in changed] == [(1, "1")]


def test_state_store_retention_keeps_recent_runs_and_pending_calls(tmp_path: Path) -> None:
    import time as time_mod

    from crm_bridge.state import StateStore

    store = StateStore(tmp_path / "s.db")
    old, recent = store.start_run(False), store.start_run(False)
    for run in (old, recent):
        store.journal_plan(run, [("[]", "[]"), ("[]", "[]")])
        store.record_applied([("c1", "f", "null", '"x"')], run, {"c2": "refused"}, (run, 0))
        store.finish_run(run, "ok", {})
    store.db.execute(
        "UPDATE runs SET started_at = ? WHERE id = ?", (time_mod.time() - 200 * 86400, old)
    )
    assert store.prune(180) == 1
    assert [r["id"] for r in store.runs()] == [recent]
    assert store.changes(old) == [] and store.changes(recent) == [("c1", "f", None, "x")]
    # The old run's unconfirmed call stays for a resume; its confirmed one is gone.
    assert [(r, c) for r, c, _, _ in store.pending_calls()] == [(old, 1), (recent, 1)]
    assert store.journal(old) == [(1, None, None)]
    assert store.applied() == {"c1": {"f": "x"}}


def test_short_secrets_are_redacted_as_words_not_inside_words() -> None:
    from crm_bridge.config import redact

    text = "cannot reach ERPNext at https://erp.example.com with key a and token s3cr3t-long"
    out = redact(text, {"a", "s3cr3t-long"})
    assert out == "cannot reach ERPNext at https://erp.example.com with key *** and token ***"


EDGES = [1.005, 1.015, 2.675, 0.125, 0.135, 1.115, 8.345, 0.285, 1234567.895, 2.5, 0.5]
EDGES += [-1.005, -2.675, -0.125, -0.004, -0.0, 0.0, 0.004, 0.005, 1e-05, 3e-07, 99.995]
EDGES += [1e9 + 0.005, 12345678901.125, 2.0**53, 1e15, 0.1 + 0.2, 1 / 3, 2 / 3, 4.35, 4.45]


@pytest.mark.parametrize("digits", [0, 2, 3, 4])
def test_columnar_keys_round_exactly_as_values_were_written_before(digits: int) -> None:
    """The columnar path rounds as ``Field.normalize`` always has (the shortest
    decimal text, half to even): a value written by an older version reads back
    as unchanged, and the text written is the same."""
    import random

    import polars as pl

    from crm_bridge.columns import of_rows, output_keys
    from crm_bridge.fields import encode

    money = Field("money", "numeric", "Money", digits=digits, owner="p")
    rng = random.Random(digits)
    rounds = [round(rng.uniform(-1e4, 1e4), rng.randint(0, 6)) for _ in range(3000)]
    halves = [(rng.randint(-(10**6), 10**6) + 0.5) / 10**digits for _ in range(2000)]
    floats = EDGES + rounds + halves + [rng.uniform(-1e7, 1e7) for _ in range(2000)]
    ids = [str(i) for i in range(len(floats))]
    for column in (
        pl.Series("money", floats, dtype=pl.Float64),
        pl.Series("money", floats, dtype=pl.Float32),
        pl.Series("money", [int(v) for v in floats], dtype=pl.Int64),
    ):
        frame = pl.DataFrame({"customer_id": ids}).with_columns(column)
        computed = output_keys(frame, {"money": money}).rows({"money": money})
        before = {cid: money.normalize(v) for cid, v in zip(ids, column.to_list(), strict=True)}
        assert {c: encode(v["money"]) for c, v in computed.items()} == {
            c: encode(v) for c, v in before.items()
        }
        # Written before, read back now: the same key, so no change is planned.
        held = {cid: {"money": encode(v)} for cid, v in before.items()}
        read = {cid: {"money": money.parse(v["money"].split('"')[3])} for cid, v in held.items()}
        plan = make_plan(
            output_keys(frame, {"money": money}),
            of_rows(read, {"money": money}),
            {"money": money},
            ran={"money"},
        )
        assert plan.changes == [] and plan.held_back == 0


def test_values_read_back_as_columns_are_those_read_back_as_rows() -> None:
    """An ERP may answer ``current_values`` in columns: the keys are exactly those of
    the same values given as rows (parsed by ``Field.parse``), edge cases included:
    rounding halves, negative zero, NaN, numbers and dates as text, "" for none."""
    import datetime as dt
    import math

    import polars as pl

    from crm_bridge.columns import of_rows, read_keys
    from crm_bridge.extract import read_back

    fields = {
        f.name: f
        for f in (
            Field("money", "numeric", "Money", digits=2, owner="p"),
            Field("count", "integer", "Count", owner="p"),
            Field("flag", "boolean", "Flag", owner="p"),
            Field("day", "date", "Day", owner="p"),
            Field("tier", "selection", "Tier", choices=(("a", "A"), ("b", "B")), owner="p"),
            Field("note", "char", "Note", owner="p"),
        )
    }
    money = [*EDGES, math.nan, math.inf, None]
    n = len(money)
    ids = [f"C{i}" for i in range(n)]
    typed = pl.DataFrame(
        {
            "customer_id": ids,
            "money": money,
            "count": [i if i % 7 else None for i in range(n)],
            "flag": [bool(i % 2) if i % 5 else None for i in range(n)],
            "day": [
                dt.date(2026, 1, 1) + dt.timedelta(days=i) if i % 3 else None for i in range(n)
            ],
            "tier": [["a", "b", "", None][i % 4] for i in range(n)],
            "note": [["x", "", None, "ü"][i % 4] for i in range(n)],
            "not_ours": list(range(n)),  # a field of no enabled plugin: left out
        }
    )
    texts = typed.with_columns(  # as a JSON API without types sends them
        pl.col("money").cast(pl.String),
        pl.col("day").dt.strftime("%Y-%m-%dT00:00:00"),
        pl.col("count").cast(pl.String),
    )
    for frame in (typed, texts):
        rows = {
            row.pop("customer_id"): {k: v for k, v in row.items() if v is not None}
            for row in frame.iter_rows(named=True)
        }
        expected = of_rows(read_back(rows, fields), fields)
        got = read_keys(frame, fields)

        def shown(rows: dict) -> dict:  # NaN is not equal to itself: compared as text
            return {c: {k: repr(v) for k, v in cells.items()} for c, cells in rows.items()}

        assert shown(got.rows(fields, nulls=False)) == shown(expected.rows(fields, nulls=False))
        assert shown({"odd": got.odd}) == shown({"odd": expected.odd})
        assert got.odd  # NaN and infinity have no key: planned one by one


def test_an_erp_answering_in_columns_is_synced_like_one_answering_in_rows(
    tmp_path: Path,
) -> None:
    """The same values given as a frame plan the same cells, write the same values,
    and a second run plans nothing."""
    import polars as pl

    from crm_bridge.plugin_manager import load_plugins
    from crm_bridge.sample_data import Profile, generate
    from crm_bridge.sync import sync
    from crm_bridge.testing import MemoryAdapter, MemoryAdapterPlugin

    as_of = dt.date(2026, 6, 30)
    snap = generate(Profile(customers=40, end=as_of))
    results = []
    for as_frame in (False, True):
        plugins = load_plugins()
        erp = MemoryAdapter(snap)
        plugins.register(MemoryAdapterPlugin(erp), "memory")
        path = tmp_path / f"frame{as_frame}" / "crm-bridge.toml"
        path.parent.mkdir()
        path.write_text(f'[erp]\nadapter = "memory"\n[sync]\nas_of = "{as_of}"\n')
        cfg = config_mod.load(path)
        fields = plugins.fields()
        sync(cfg, plugins)  # the ERP now holds the values; then a person edits two
        rows = erp.values
        assert isinstance(rows, dict)
        first = sorted(rows)[0]
        rows[first]["rfm_segment"] = "lost"
        rows[first]["kpi_aov"] = Decimal("1.5")
        if as_frame:
            names = sorted({k for cells in rows.values() for k in cells})
            erp.values = pl.DataFrame(
                [
                    {"customer_id": cid, **{k: cells.get(k) for k in names}}
                    for cid, cells in rows.items()
                ],
                infer_schema_length=None,
            ).with_columns(pl.col(pl.Decimal).cast(pl.Float64))
        dry = sync(cfg, plugins, dry_run=True)
        real = sync(cfg, plugins)
        again = sync(cfg, plugins, dry_run=True)
        assert again.counts["planned_cells"] == 0
        results.append(
            (
                dry.counts["per_field"],
                [(c.customer_id, c.field, c.new) for c in real.plan.changes],
                {  # the frame held floats: compared as the fields store them
                    cid: {k: fields[k].normalize(v) for k, v in cells.items()}
                    for cid, cells in erp._rows().items()
                },
            )
        )
    assert results[0] == results[1]
    assert results[0][1]  # the edits were put back


def test_outputs_joined_by_their_ids_codes_follow_the_customers_order() -> None:
    """Plugin outputs with the snapshot's categorical ids are put together by the
    ids' codes, in the order of the customers; the rows are those of the join by
    id text (a customer of no output left out, a cell without a key kept odd)."""
    import random

    import polars as pl

    from crm_bridge.columns import join, output_keys, row_numbers

    cat = pl.Categorical
    ids = [f"C{i}" for i in range(200)]
    customers = pl.Series(ids, dtype=cat)
    rng = random.Random(5)
    fields = {
        "amt": AMT,
        "seg": SEG,
        "big": Field("big", "numeric", "Big", owner="q"),
        "note": Field("note", "char", "Note", owner="r"),
    }
    a = rng.sample(ids, 150)  # any order, any subset
    b = rng.sample(ids, 120)
    parts = [
        output_keys(
            pl.DataFrame({"customer_id": a, "amt": [i / 8 for i in range(150)]}).cast(
                {"customer_id": cat}
            ),
            fields,
        ),
        output_keys(
            pl.DataFrame(
                {
                    "customer_id": b,
                    "seg": ["a", "b"] * 60,
                    "big": [10**18, *range(119)],  # too large for a key: odd
                }
            ).cast({"customer_id": cat}),
            fields,
        ),
    ]
    by_codes = join(parts, order=customers)
    by_text = join(parts)
    assert by_codes.frame["customer_id"].dtype == pl.String
    assert by_codes.frame["customer_id"].to_list() == [c for c in ids if c in {*a, *b}]
    assert by_codes.rows(fields) == by_text.rows(fields)
    assert by_codes.odd == by_text.odd == {(b[0], "big"): Decimal(10**18)}
    # An id that is not a customer: matched by text, as before.
    stranger = output_keys(pl.DataFrame({"customer_id": ["X"], "note": ["n"]}), fields)
    assert join([*parts, stranger], order=customers).rows(fields)["X"]["note"] == "n"
    # The same ids in the same order on both sides: row for row, no join.
    same = row_numbers(customers, pl.Series(ids), "full", ("l", "r"))
    assert same["l"].to_list() == same["r"].to_list() == list(range(200))
    assert same["customer_id"].to_list() == ids


def test_pages_of_values_read_back_are_stacked_with_the_later_read_winning() -> None:
    """Pages of values read back make one row per customer: pages of other
    customers as they are, a customer read again as the later page gave it (all
    of it, odd cells included)."""
    import polars as pl

    from crm_bridge.columns import of_rows, read_keys, stack

    money = {"amt": AMT, "seg": SEG}
    first = of_rows({"1": {"amt": Decimal("1.50")}, "2": {"amt": Decimal("-0.00")}}, money)
    second = read_keys(pl.DataFrame({"customer_id": ["3"], "seg": ["b"]}), money)
    apart = stack([first, second])
    assert apart.rows(money, nulls=False) == {
        "1": {"amt": Decimal("1.50")},
        "2": {"amt": Decimal("-0.00")},
        "3": {"seg": "b"},
    }
    assert apart.odd == {("2", "amt"): Decimal("-0.00")}
    again = read_keys(pl.DataFrame({"customer_id": ["2", "4"], "seg": ["a", "b"]}), money)
    later = stack([first, second, again])
    assert later.frame["customer_id"].to_list() == ["1", "3", "2", "4"]
    assert later.rows(money, nulls=False)["2"] == {"seg": "a"}  # -0.00 is gone with its page
    assert later.odd == {}


def test_a_page_of_columns_replaces_the_rows_an_earlier_page_gave() -> None:
    """An ERP may answer values in rows, then in columns: a customer of both
    holds what the later page gave, and a page of columns after no rows is
    kept as it is."""
    import polars as pl

    from crm_bridge.extract import extract
    from crm_bridge.sample_data import Profile, generate
    from crm_bridge.testing import MemoryAdapter

    snap = generate(Profile(customers=5, end=dt.date(2026, 6, 30)))
    first, second = snap.customers["customer_id"].cast(pl.String).head(2).to_list()
    page = pl.DataFrame({"customer_id": [first], "crm_rfm_segment": ["Champions"]})

    class Mixed(MemoryAdapter):
        def current_values(self):  # type: ignore[no-untyped-def]
            yield [(first, {"crm_rfm_segment": "Lost"}), (second, {"crm_rfm_segment": "Lost"})]
            yield page

    _, tables = extract(Mixed(snap), dt.date(2026, 6, 30))
    assert set(tables.current) == {second} and tables.current_frames == [page]

    class ColumnsOnly(MemoryAdapter):
        def current_values(self):  # type: ignore[no-untyped-def]
            yield page

    _, tables = extract(ColumnsOnly(snap), dt.date(2026, 6, 30))
    assert tables.current == {} and tables.current_frames == [page]
