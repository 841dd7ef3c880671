"""The REST profiles against in-memory fakes of Odoo, ERPNext and Dolibarr (these
ERPs cannot run here): the adapter conformance suite, retries, mapping errors."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
import responses
from crm_bridge.adapters.rest import RestAdapter

from crm_bridge import mapping
from crm_bridge.adapter import Batch
from crm_bridge.errors import AuthenticationError, ConfigError, RetriableErpError
from crm_bridge.testing import AdapterConformance

from . import fake_erps


class RestConformance(AdapterConformance):
    profile = ""
    fake_class: type[fake_erps.FakeErp]
    settings: ClassVar[dict[str, Any]]

    @pytest.fixture(autouse=True)
    def _erp(self) -> Iterator[None]:
        self.erp = self.fake_class()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            self.erp.install(rsps)
            yield

    def make_adapter(self) -> RestAdapter:
        return RestAdapter(mapping.load(self.profile), {"url": self.erp.base, **self.settings})

    def local(self, at: dt.datetime) -> dt.datetime:
        """``at`` as a naive time in the server's zone."""
        return at.astimezone(ZoneInfo(self.server_zone)).replace(tzinfo=None)


class TestDolibarr(RestConformance):
    profile = "dolibarr"
    fake_class = fake_erps.Dolibarr
    settings: ClassVar[dict[str, Any]] = {
        "api_key": fake_erps.Dolibarr.key,
        "url": fake_erps.Dolibarr.base + "/api/index.php",
    }

    def make_adapter(self) -> RestAdapter:
        return RestAdapter(mapping.load(self.profile), self.settings)

    def foreign(self, customer_id: str) -> dict[str, Any]:
        party = self.erp.thirdparties[customer_id]  # type: ignore[attr-defined]
        return {k: party[k] for k in ("name", "email", "code_client")}

    def raw_values(self) -> dict[str, dict[str, Any]]:
        parties = self.erp.thirdparties  # type: ignore[attr-defined]
        return {
            cid: {k.removeprefix("options_crm_"): v for k, v in (p["array_options"] or {}).items()}
            for cid, p in parties.items()
        }

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        # llx_*.tms are TIMESTAMP ... ON UPDATE CURRENT_TIMESTAMP; a line edit rewrites the
        # invoice's totals (Facture::update_price), which moves the invoice's tms (# assumed)
        erp: Any = self.erp
        stamp = int(at.timestamp())
        if table == "customers":
            erp.thirdparties[record_id]["date_modification"] = stamp
            return
        invoices = erp.invoices
        if table == "invoice_lines":
            record_id = next(
                i["id"] for i in invoices if record_id in {r["id"] for r in i["lines"]}
            )
        next(i for i in invoices if i["id"] == record_id)["date_modification"] = stamp

    def test_quirks_string_numbers_unix_dates_empty_list(self) -> None:
        tables = self._read(self.make_adapter())
        invoice = next(r for r in tables["invoices"] if r["invoice_id"] == "4")
        assert invoice["kind"] == "credit_note" and invoice["amount"] == -10.0
        assert str(invoice["date"]) == "2024-03-20" and str(invoice["due_date"]) == "2024-04-19"
        line = next(r for r in tables["invoice_lines"] if r["invoice_id"] == "3")
        assert line["quantity"] == 5.0 and line["cost"] == 30.0
        assert {r["customer_id"] for r in tables["customers"]} == {"1", "2", "3", "4"}
        # date_closing is always null: paid dates and payments come from /invoices/{id}/payments
        paid = [r for r in tables["invoices"] if r["state"] == "paid"]
        assert paid and all(r["paid_date"] == r["date"] + dt.timedelta(days=10) for r in paid)
        assert {p["invoice_id"] for p in tables["payments"]} == {r["invoice_id"] for r in paid}

    def test_dates_and_booleans_sent_as_dolibarr_stores_them(self) -> None:
        adapter = self._provisioned()
        import datetime as dt

        from crm_bridge.adapter import Batch

        adapter.write([Batch(("1",), {"conf_since": dt.date(2024, 3, 1), "conf_flag": True})])
        held = self.erp.thirdparties["1"]["array_options"]  # type: ignore[attr-defined]
        assert held == {"options_crm_conf_since": 1709251200, "options_crm_conf_flag": 1}


class TestERPNext(RestConformance):
    profile = "erpnext"
    fake_class = fake_erps.ERPNext
    settings: ClassVar[dict[str, Any]] = {"api_key": "apikey", "api_secret": "apisecret"}

    def foreign(self, customer_id: str) -> dict[str, Any]:
        doc = self.erp.customer(customer_id)  # type: ignore[attr-defined]
        return {k: doc[k] for k in ("customer_name", "customer_group", "disabled")}

    def raw_values(self) -> dict[str, dict[str, Any]]:
        docs = self.erp.docs["Customer"]  # type: ignore[attr-defined]
        return {
            d["name"]: {k.removeprefix("custom_crm_"): v for k, v in d.items() if "_crm_" in k}
            for d in docs
        }

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        # documented: Document.save sets modified on the document and on every child row
        # (frappe/model/document.py set_user_and_timestamp), in the site's time zone
        docs: dict[str, list[dict[str, Any]]] = self.erp.docs  # type: ignore[attr-defined]
        stamp = self.local(at).strftime("%Y-%m-%d %H:%M:%S.%f")
        if table == "customers":
            next(d for d in docs["Customer"] if d["name"] == record_id)["modified"] = stamp
            return
        if table == "invoice_lines":
            record_id = next(
                d["parent"] for d in docs["Sales Invoice Item"] if d["name"] == record_id
            )
        next(d for d in docs["Sales Invoice"] if d["name"] == record_id)["modified"] = stamp
        for item in docs["Sales Invoice Item"]:
            if item["parent"] == record_id:
                item["modified"] = stamp

    def test_child_lines_get_their_invoice_customer(self) -> None:
        tables = self._read(self.make_adapter())
        line = next(r for r in tables["invoice_lines"] if r["invoice_id"] == "ACC-SINV-2024-00003")
        assert line["customer_id"] == "CUST-00002"
        states = {r["invoice_id"][-1]: r["state"] for r in tables["invoices"]}
        assert states == {"1": "paid", "2": "posted", "3": "paid", "4": "posted", "5": "draft"}


class TestOdoo(RestConformance):
    profile = "odoo"
    fake_class = fake_erps.Odoo
    settings: ClassVar[dict[str, Any]] = {
        "api_key": fake_erps.Odoo.api_key,
        "database": fake_erps.Odoo.database,
    }

    def foreign(self, customer_id: str) -> dict[str, Any]:
        partner = self.erp.models["res.partner"][int(customer_id)]  # type: ignore[attr-defined]
        return {k: partner[k] for k in ("name", "email", "ref")}

    def raw_values(self) -> dict[str, dict[str, Any]]:
        partners = self.erp.models["res.partner"]  # type: ignore[attr-defined]
        return {
            str(i): {k.removeprefix("x_crm_"): v for k, v in p.items() if k.startswith("x_crm_")}
            for i, p in partners.items()
        }

    def touch(self, table: str, record_id: str, at: dt.datetime) -> None:
        # documented: write_date is kept and sent in UTC whatever the server's zone; a
        # line is edited through its invoice's form, which writes the move (# assumed:
        # the move's write_date moves with it)
        models = self.erp.models  # type: ignore[attr-defined]
        stamp = at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        if table == "customers":
            models["res.partner"][int(record_id)]["write_date"] = stamp
            return
        move = int(record_id)
        if table == "invoice_lines":
            move = models["account.move.line"][int(record_id)]["move_id"][0]
        models["account.move"][move]["write_date"] = stamp

    def test_customers_with_equal_values_share_one_write(self) -> None:
        adapter = self._provisioned()
        from crm_bridge.adapter import Batch

        before = self.erp.calls.get("/json/2/res.partner/write", 0)
        adapter.write([Batch(("1", "2", "3"), {"conf_score": 9}), Batch(("4",), {"conf_score": 1})])
        assert self.erp.calls["/json/2/res.partner/write"] - before == 2

    def test_many2one_pairs_false_and_credit_notes(self) -> None:
        tables = self._read(self.make_adapter())
        assert {r["invoice_id"] for r in tables["invoices"]} == {"1", "2", "3", "4"}  # no draft
        credit = next(r for r in tables["invoice_lines"] if r["invoice_id"] == "4")
        assert credit["amount"] == -10.0 and credit["customer_id"] == "2"
        assert all(r["industry"] is None for r in tables["customers"])  # false -> null
        assert tables["products"][0]["category"] == "All"


class TestOdooJsonRpc(TestOdoo):
    profile = "odoo_jsonrpc"
    fake_class = fake_erps.OdooJsonRpc
    settings: ClassVar[dict[str, Any]] = {
        "database": fake_erps.Odoo.database,
        "username": fake_erps.OdooJsonRpc.username,
        "password": fake_erps.OdooJsonRpc.password,
    }

    def test_customers_with_equal_values_share_one_write(self) -> None:
        adapter = self._provisioned()
        before = self.erp.calls.get("/jsonrpc", 0)
        adapter.write([Batch(("1", "2", "3"), {"conf_score": 9}), Batch(("4",), {"conf_score": 1})])
        assert self.erp.calls["/jsonrpc"] - before == 3  # common.login, then one write per set

    def test_a_wrong_password_is_refused_at_login(self) -> None:
        settings = {**self.settings, "url": self.erp.base, "password": "bad-pass-x"}
        adapter = RestAdapter(mapping.load(self.profile), settings)
        with pytest.raises(AuthenticationError, match="rejected the login of 'crm'") as caught:
            list(adapter.extract("customers"))
        assert "bad-pass-x" not in str(caught.value)


# -- retries ------------------------------------------------------------------------
def _adapter(erp: fake_erps.FakeErp, sleeps: list[float]) -> RestAdapter:
    settings: ClassVar[dict[str, Any]] = {
        "url": erp.base,
        "api_key": fake_erps.Odoo.api_key,
        "database": "prod",
    }
    return RestAdapter(mapping.load("odoo"), settings, sleep=sleeps.append)


@pytest.fixture
def odoo() -> Iterator[fake_erps.Odoo]:
    erp = fake_erps.Odoo()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        yield erp


def test_retries_500_500_then_succeeds(odoo: fake_erps.Odoo) -> None:
    sleeps: list[float] = []
    odoo.fail_next = [500, 500]
    rows = [r for page in _adapter(odoo, sleeps).extract("customers") for r in page]
    assert len(rows) == 4
    assert odoo.calls["/json/2/res.partner/search_read"] == 3 and len(sleeps) == 2


def test_429_waits_as_long_as_retry_after_says(odoo: fake_erps.Odoo) -> None:
    sleeps: list[float] = []
    odoo.fail_next = [429]
    rows = [r for page in _adapter(odoo, sleeps).extract("products") for r in page]
    assert len(rows) == 3 and sleeps == [7.0]
    assert odoo.calls["/json/2/product.product/search_read"] == 2


def test_timeout_then_success() -> None:
    import requests

    sleeps: list[float] = []
    calls = []

    def flaky(request: Any) -> Any:
        calls.append(request)
        if len(calls) == 1:
            raise requests.Timeout("read timed out")
        return 200, {}, "[]"

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", "https://erp.example.com/json/2/res.partner/search_read", flaky)
        erp = fake_erps.Odoo()
        rows = list(_adapter(erp, sleeps).extract("customers"))
    assert rows == [] and len(calls) == 2 and len(sleeps) == 1


def test_permanent_401_is_not_retried(odoo: fake_erps.Odoo) -> None:
    sleeps: list[float] = []
    settings: ClassVar[dict[str, Any]] = {
        "url": odoo.base,
        "api_key": "wrong-key-value",
        "database": "prod",
    }
    adapter = RestAdapter(mapping.load("odoo"), settings, sleep=sleeps.append)
    with pytest.raises(AuthenticationError) as caught:
        list(adapter.extract("customers"))
    assert odoo.calls["/json/2/res.partner/search_read"] == 1 and sleeps == []
    assert "401" in str(caught.value) and "wrong-key-value" not in str(caught.value)
    assert caught.value.hint


def test_gives_up_after_five_attempts(odoo: fake_erps.Odoo) -> None:
    sleeps: list[float] = []
    odoo.fail_next = [503] * 9
    with pytest.raises(RetriableErpError, match="HTTP 503"):
        list(_adapter(odoo, sleeps).extract("customers"))
    assert odoo.calls["/json/2/res.partner/search_read"] == 5 and len(sleeps) == 4


# -- mapping files -------------------------------------------------------------------
def test_a_mapping_mistake_names_the_key_path(tmp_path: Path) -> None:
    text = mapping.profiles()["dolibarr"].read_text("utf-8")
    broken = tmp_path / "mine.toml"
    broken.write_text(
        text.replace('style = "page", first = 0 }', 'style = "pages", first = 0 }', 1)
    )
    with pytest.raises(ConfigError) as caught:
        mapping.load(str(broken))
    assert "tables.customers.paging.style" in str(caught.value) and str(broken) in str(caught.value)


def test_a_mapping_to_an_unknown_column_is_refused(tmp_path: Path) -> None:
    text = mapping.profiles()["dolibarr"].read_text("utf-8")
    broken = tmp_path / "mine.toml"
    broken.write_text(text.replace('code = "code_client"', 'kode = "code_client"'))
    with pytest.raises(ConfigError, match=r"tables\.customers\.fields\.kode: not a column"):
        mapping.load(str(broken))


def test_templates_keep_types_and_fill_text() -> None:
    variables = {"ids": [1, 2], "last": 7, "name": "x"}
    body = {
        "ids": "{ids}",
        "domain": [["id", ">", "{last}"]],
        "label": "crm {name}",
        "gone": "{none}",
    }
    assert mapping.render(body, {**variables, "none": None}) == {
        "ids": [1, 2],
        "domain": [["id", ">", 7]],
        "label": "crm x",
    }
    with pytest.raises(ConfigError, match=r"\{missing\}"):
        mapping.render("{missing}", variables)


def test_a_table_entry_rendering_to_an_empty_table_is_left_out() -> None:
    # Dolibarr fails (HTTP 500) on an empty param array: a field without choices
    # must not send one; a literal empty table stays.
    body = {"label": "x", "param": {"options": "{selection}"}, "keep": {}}
    assert mapping.render(body, {"selection": None}) == {"label": "x", "keep": {}}
    assert mapping.render(body, {"selection": {"a": "A"}})["param"] == {"options": {"a": "A"}}


def test_adapters_list_says_how_each_profile_was_proven() -> None:
    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from crm_bridge.plugin_manager import load_plugins

    out = CliRunner().invoke(cli, ["adapters", "list"], obj=load_plugins()).output
    line = next(x for x in out.splitlines() if x.startswith("dolibarr "))
    assert line.endswith("tested against a live Dolibarr 23.0.0-beta in the test suite")


def test_a_bad_erp_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        RestAdapter(
            mapping.load("dolibarr"),
            {"url": "http://erp.example", "api_key": "k", "timezone": "Mars/Olympus"},
        )


# -- the whole run through a profile ------------------------------------------------------
def test_cli_sync_on_the_odoo_profile_writes_then_rests(
    odoo: fake_erps.Odoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from crm_bridge.plugin_manager import load_plugins

    monkeypatch.setenv("ODOO_KEY", fake_erps.Odoo.api_key)
    config = tmp_path / "crm-bridge.toml"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "--config",
            str(config),
            "init",
            "--profile",
            "odoo",
            "--url",
            odoo.base,
            "--database",
            "prod",
            "--secret-env",
            "ODOO_KEY",
        ],
    )
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert 'adapter = "odoo"' in text and "${ODOO_KEY}" in text
    config.write_text(text + "\n[plugins.segmentation]\n", "utf-8")

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args], obj=load_plugins())

    assert run("fields", "provision").exit_code == 0
    first = run("sync", "--json")
    assert first.exit_code == 0, first.output
    import json

    counts = json.loads(first.stdout)["counts"]
    assert counts["read"]["customers"] == 4 and counts["read"]["invoice_lines"] == 6
    # Acme and Globex bought; Initech has only a draft invoice and Umbrella nothing
    assert counts["written"] == counts["planned_customers"] == 2
    partner = odoo.models["res.partner"][2]
    assert partner["x_crm_rfm_segment"] and partner["name"] == "Globex"
    second = run("sync", "--json")
    assert json.loads(second.stdout)["counts"]["planned_cells"] == 0, second.output


def test_every_profile_has_its_docs_page_naming_its_settings() -> None:
    root = Path(__file__).parent.parent / "docs"
    index = (root / "adapters.md").read_text("utf-8")
    for name in mapping.profiles():
        spec = mapping.load(name)
        page = root / spec.data["docs"]
        assert page.is_file(), f"{name}: {page} is missing"
        text = page.read_text("utf-8")
        for key in spec.data["settings"]["required"]:
            assert key in text, f"{page.name} does not mention the setting {key}"
        assert f"`{name}`" in index, f"docs/adapters.md does not list {name}"


def test_read_concurrency_reads_the_same_rows_in_fewer_rounds() -> None:
    erp = fake_erps.Dolibarr()
    settings = {"url": erp.base + "/api/index.php", "api_key": erp.key, "page_size": 1}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        one = RestAdapter(mapping.load("dolibarr"), settings)
        serial = [r for page in one.extract("customers") for r in page]
        four = RestAdapter(mapping.load("dolibarr"), {**settings, "read_concurrency": 4})
        parallel = [r for page in four.extract("customers") for r in page]
    assert parallel == serial and len(serial) == 4
    assert one.calls == 5  # 4 pages of one, then the 404 that ends the list
    # two waves of four pages (pages not yet started when the end is seen are cancelled)
    assert 5 <= four.calls <= 8


def test_requests_per_second_caps_the_rate() -> None:
    """Every request of the adapter goes through one limiter of 5 requests a second
    (requests-ratelimiter's); how long a capped read takes is measured in benchmarks/,
    not asserted here."""
    erp = fake_erps.Dolibarr()
    settings = {
        "url": erp.base + "/api/index.php",
        "api_key": erp.key,
        "page_size": 1,
        "requests_per_second": 5,
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        adapter = RestAdapter(mapping.load("dolibarr"), settings)
        rows = [r for page in adapter.extract("customers") for r in page]
    assert len(rows) == 4 and adapter.calls == 5
    limiter = adapter.http.get_adapter(erp.base).limiter  # type: ignore[attr-defined]
    assert adapter.http.get_adapter("http://erp.example.com").limiter is limiter  # type: ignore[attr-defined]
    (rate,) = limiter.bucket_factory.rates
    assert (rate.limit, rate.interval) == (5, 1000)
    unlimited = RestAdapter(mapping.load("dolibarr"), {**settings, "requests_per_second": None})
    assert not hasattr(unlimited.http.get_adapter(erp.base), "limiter")


def test_the_jsonrpc_profile_is_the_json2_profile_in_an_envelope() -> None:
    import tomllib

    from .odoo_jsonrpc_profile import expected

    shipped = tomllib.loads(mapping.profiles()["odoo_jsonrpc"].read_text("utf-8"))
    assert shipped == expected(), "run: python -m tests.odoo_jsonrpc_profile"


def test_a_refused_customer_makes_the_run_partial_and_is_retried_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from crm_bridge.plugin_manager import load_plugins

    erp = fake_erps.Dolibarr()
    refuse = {"2"}
    handle = erp.handle

    def picky(method: str, path: str, query: Any, body: Any, headers: Any) -> Any:
        if method == "PUT" and path.rsplit("/", 1)[-1] in refuse and "thirdparties" in path:
            return 400, {}, json.dumps({"error": {"code": 400, "message": "Bad value for field"}})
        return handle(method, path, query, body, headers)

    erp.handle = picky  # type: ignore[method-assign]
    monkeypatch.setenv("DOLI_KEY", erp.key)
    config = tmp_path / "crm-bridge.toml"
    config.write_text(
        f'[erp]\nadapter = "dolibarr"\nurl = "{erp.base}/api/index.php"\n'
        'api_key = "${DOLI_KEY}"\n[sync]\nas_of = "2024-04-30"\n[state]\npath = "state.db"\n'
    )
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args], obj=load_plugins())

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        assert run("fields", "provision").exit_code == 0
        first = run("sync", "--json")
        assert first.exit_code == 3, first.output  # partial
        counts = json.loads(first.stdout)["counts"]
        assert counts["rejected_records"] == 1 and counts["written"] >= 1
        shown = run("runs", "show", "1", "--json")
        assert "Bad value for field" in shown.stdout and erp.key not in shown.stdout
        assert erp.thirdparties["2"]["array_options"] == []
        refuse.clear()  # the admin fixed it in Dolibarr
        second = run("sync", "--json")
        assert second.exit_code == 0, second.output
        assert erp.thirdparties["2"]["array_options"]["options_crm_rfm_segment"]


def test_a_mapping_of_your_own_basic_auth_next_links_and_full_replace(tmp_path: Path) -> None:
    """An ERP whose list answers carry a "next" link, and whose PUT replaces the record:
    crm-bridge reads it, changes its own fields and sends everything back."""
    import base64
    import json

    (tmp_path / "mine.toml").write_text(
        """
protocol = "rest"
title = "Mine"
[auth]
type = "basic"
[tables.customers]
request = { path = "/v1/customers", params = { per_page = "{limit}" }, records = "items" }
paging = { style = "cursor", next = "links.next" }
fields = { customer_id = "id", name = "display_name", active = { default = true } }
[write]
mode = "replace"
read = { path = "/v1/customers/{id}" }
request = { method = "PUT", path = "/v1/customers/{id}", body = "{record}" }
values = "custom"
field_name = "crm_{name}"
[manual]
instructions = "add them in Settings > Custom fields"
"""
    )
    people = {
        str(i): {
            "id": i,
            "display_name": f"P{i}",
            "email": f"p{i}@x.org",
            "custom": {"crm_conf_score": None, "other": "keep me"},
        }
        for i in range(5)
    }
    auth = "Basic " + base64.b64encode(b"me:secret").decode()

    def listing(request: Any) -> Any:
        assert request.headers["Authorization"] == auth
        after = int(request.url.split("after=")[1]) if "after=" in request.url else -1
        page = [p for k, p in sorted(people.items()) if int(k) > after][:2]
        nxt = f"https://mine.example/v1/customers?after={page[-1]['id']}" if page else None
        return 200, {}, json.dumps({"items": page, "links": {"next": nxt}})

    def one(request: Any) -> Any:
        key = request.url.rsplit("/", 1)[1]
        if request.method == "PUT":
            people[key] = json.loads(request.body)  # replaces the whole record
        return 200, {}, json.dumps(people[key])

    with responses.RequestsMock() as rsps:
        rsps.add_callback("GET", "https://mine.example/v1/customers", listing)
        rsps.add_callback(
            "GET", re.compile(r"https://mine.example/v1/customers\?after=\d+"), listing
        )
        rsps.add_callback("GET", re.compile(r"https://mine.example/v1/customers/\d+"), one)
        rsps.add_callback("PUT", re.compile(r"https://mine.example/v1/customers/\d+"), one)
        settings = {"url": "https://mine.example", "username": "me", "password": "secret"}
        adapter = RestAdapter(mapping.load(str(tmp_path / "mine.toml")), settings)
        adapter.page_size = 2
        rows = [r for page in adapter.extract("customers") for r in page]
        assert [r["customer_id"] for r in rows] == ["0", "1", "2", "3", "4"]
        result = adapter.write([Batch(("1", "3"), {"conf_score": 8})])
    assert sorted(result.written) == ["1", "3"]
    assert people["1"]["custom"] == {"crm_conf_score": 8, "other": "keep me"}
    assert people["1"]["email"] == "p1@x.org" and people["0"]["custom"]["crm_conf_score"] is None


def test_the_generic_adapters_need_a_mapping_of_their_protocol() -> None:
    from crm_bridge.plugin_manager import load_plugins

    specs = load_plugins().adapters()
    with pytest.raises(ConfigError, match=r"erp\.mapping is missing") as caught:
        specs["rest"].factory({"url": "https://x.example"})
    assert "odoo" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match="nav is a soap mapping, not rest"):
        specs["rest"].factory({"url": "https://x.example", "mapping": "nav"})
    assert specs["nav"].secret_keys == ("password",)


@pytest.mark.parametrize("case", [TestDolibarr, TestERPNext, TestOdoo, TestOdooJsonRpc])
def test_a_re_run_writes_nothing_per_profile(
    case: type[RestConformance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three syncs in a row: the second and third (incremental, with customers whose
    modification stamp the write did not move) plan nothing, and the ERP holds the
    values of the first."""
    import json

    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from crm_bridge.plugin_manager import load_plugins

    erp = case.fake_class()
    settings = {"url": erp.base, **case.settings}
    lines = [f'adapter = "{case.profile}"']
    for key, value in settings.items():
        monkeypatch.setenv(f"CRM_TEST_{key.upper()}", str(value))
        lines.append(f'{key} = "${{CRM_TEST_{key.upper()}}}"')
    config = tmp_path / "crm-bridge.toml"
    config.write_text(
        "[erp]\n" + "\n".join(lines) + '\n[sync]\nas_of = "2024-04-30"\n[state]\npath = "s.db"\n'
    )

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), *args], obj=load_plugins())

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        erp.install(rsps)
        assert run("fields", "provision").exit_code == 0
        first = run("sync", "--json")
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout)["counts"]["planned_cells"] > 0
        held = RestAdapter(mapping.load(case.profile), settings)
        before = {cid: v for page in held.current_values() for cid, v in page}
        for _ in range(2):
            again = run("sync", "--json")
            assert again.exit_code == 0, again.output
            counts = json.loads(again.stdout)["counts"]
            assert counts["planned_cells"] == 0, counts["per_field"]
            assert counts["drift"] == {}
        after = {cid: v for page in held.current_values() for cid, v in page}
        assert after == before
