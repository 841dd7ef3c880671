"""The SOAP adapter: the conformance suite against a real SOAP service on
loopback (spyne), and the NAV / Business Central profile on its local WSDLs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_bridge.adapters.soap import SoapAdapter

from crm_bridge import mapping
from crm_bridge.adapter import Batch
from crm_bridge.errors import AuthenticationError
from crm_bridge.testing import AdapterConformance

from . import soap_service

MAPPING = Path(__file__).parent / "data" / "crm_erp_soap.toml"


class TestGenericSoap(AdapterConformance):
    @pytest.fixture(autouse=True)
    def _service(self) -> Iterator[None]:
        with soap_service.running() as url:
            self.url = url
            yield

    def make_adapter(self) -> SoapAdapter:
        settings = {
            "url": self.url,
            "username": soap_service.USER,
            "password": soap_service.PASSWORD,
        }
        return SoapAdapter(mapping.load(str(MAPPING)), settings)

    def foreign(self, customer_id: str) -> dict[str, Any]:
        record = soap_service.STORE.customers[customer_id]
        return {k: record[k] for k in ("name", "code", "email", "active")}

    def raw_values(self) -> dict[str, dict[str, Any]]:
        return {
            cid: {k.removeprefix("crm_"): v for k, v in record.items() if k.startswith("crm_")}
            for cid, record in soap_service.STORE.customers.items()
        }

    def test_replace_mode_reads_then_sends_whole_records_together(self) -> None:
        adapter = self.make_adapter()
        adapter.write([Batch(("1", "2", "3"), {"conf_score": 4})])
        calls = soap_service.STORE.calls
        assert calls["GetCustomer"] == 3 and calls["UpdateCustomers"] == 1
        assert "UpdateCustomer" not in calls

    def test_wrong_password_is_a_clear_refusal(self) -> None:
        settings = {"url": self.url, "username": "crm", "password": "nope-wrong"}
        adapter = SoapAdapter(mapping.load(str(MAPPING)), settings)
        with pytest.raises(
            AuthenticationError, match="user name or password is incorrect"
        ) as caught:
            list(adapter.extract("customers"))
        assert "nope-wrong" not in str(caught.value)


# -- Dynamics NAV / Business Central -------------------------------------------------
class TestNav(AdapterConformance):
    @pytest.fixture(autouse=True)
    def _nav(self) -> Iterator[None]:
        import responses

        from . import fake_nav

        self.nav = fake_nav.Nav()
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            self.nav.install(rsps)
            yield

    def make_adapter(self) -> SoapAdapter:
        from . import fake_nav

        settings = {
            "url": fake_nav.BASE,
            "company": fake_nav.COMPANY,
            "username": fake_nav.USER,
            "password": fake_nav.PASSWORD,
        }
        return SoapAdapter(mapping.load("nav"), settings)

    def foreign(self, customer_id: str) -> dict[str, Any]:
        row = next(r for r in self.nav.pages["Customer"] if r["No"] == customer_id)
        return {k: row[k] for k in ("Name", "E_Mail", "Blocked", "Customer_Posting_Group")}

    def raw_values(self) -> dict[str, dict[str, Any]]:
        return {
            row["No"]: {k.removeprefix("CRM_"): v for k, v in row.items() if k.startswith("CRM_")}
            for row in self.nav.pages["Customer"]
        }

    def test_pages_with_bookmarks_and_updates_with_fresh_keys(self) -> None:
        adapter = self.make_adapter()
        adapter.page_size = 2
        customers = [r for page in adapter.extract("customers") for r in page]
        assert [c["customer_id"] for c in customers] == ["C00001", "C00002", "C00003", "C00004"]
        assert self.nav.calls["Customer.ReadMultiple"] == 3  # 2 + 2 + an empty page
        for _ in range(2):  # the Key changes after each update: each write reads it again
            result = adapter.write([Batch(("C00001", "C00002"), {"conf_score": 7})])
            assert sorted(result.written) == ["C00001", "C00002"]
        assert self.nav.calls["Customer.UpdateMultiple"] == 2

    def test_provisioning_lists_what_the_admin_must_add(self) -> None:
        from crm_bridge.errors import ErpError
        from crm_bridge.fields import Field

        adapter = self.make_adapter()
        missing = Field("rfm_segment", "char", "RFM segment")
        with pytest.raises(ErpError, match=r"CRM_rfm_segment \(Text\[250\]\)") as caught:
            adapter.provision([*self.fields, missing])
        assert "page extension" in (caught.value.hint or "")
        checks = {c.name: c for c in adapter.check([missing])}
        assert not checks["fields"].ok and "CRM_rfm_segment" in checks["fields"].detail


def _nav_mapping_with_local_wsdls(tmp_path: Path, auth: str) -> Path:
    """The NAV profile pointed at WSDL files on disk, with another auth table."""
    import shutil

    from . import fake_nav

    for wsdl in fake_nav.WSDLS.glob("*.wsdl"):
        shutil.copy(wsdl, tmp_path / wsdl.name)
    text = mapping.profiles()["nav"].read_text("utf-8")
    for service, page in (
        ("customer", "Customer"),
        ("item", "Item"),
        ("invoices", "PostedSalesInvoices"),
        ("invoice_lines", "PostedSalesInvLines"),
        ("credit_memos", "PostedSalesCreditMemos"),
        ("credit_memo_lines", "PostedSalesCrMemoLines"),
    ):
        text = text.replace(
            f'{service} = "{{url}}/{{company}}/Page/{page}"\n', f'{service} = "{page}.wsdl"\n', 1
        )
    text = text.replace('[auth]\ntype = "basic"\n', auth)
    path = tmp_path / "nav-local.toml"
    path.write_text(text, "utf-8")
    return path


def test_local_wsdl_files_and_ws_security_username_token(tmp_path: Path) -> None:
    import responses

    from . import fake_nav

    path = _nav_mapping_with_local_wsdls(tmp_path, '[auth]\ntype = "wsse"\n')
    nav = fake_nav.Nav()
    nav._authorised = lambda request: b"UsernameToken" in request.body  # type: ignore[method-assign]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        nav.install(rsps)
        settings = {
            "url": fake_nav.BASE,
            "company": fake_nav.COMPANY,
            "username": fake_nav.USER,
            "password": fake_nav.PASSWORD,
        }
        adapter = SoapAdapter(mapping.load(str(path)), settings)
        rows = [r for page in adapter.extract("customers") for r in page]
        sent = rsps.calls[0].request
    assert len(rows) == 4
    assert all(c.request.method == "POST" for c in rsps.calls), "a WSDL was fetched"
    assert b"<wsse:Username>NAVUSER</wsse:Username>" in sent.body
    assert "Authorization" not in sent.headers


def test_a_wsdl_importing_from_elsewhere_needs_the_schema_cache(tmp_path: Path) -> None:
    from crm_bridge.errors import ConfigError

    from . import fake_nav

    path = _nav_mapping_with_local_wsdls(tmp_path, '[auth]\ntype = "basic"\n')
    wsdl = tmp_path / "Customer.wsdl"
    wsdl.write_text(
        wsdl.read_text().replace(
            "<types>",
            '<types><xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
            '<xsd:import namespace="urn:x" schemaLocation="https://schemas.example.org/common.xsd"/>'
            "</xsd:schema>",
        )
    )
    settings = {
        "url": fake_nav.BASE,
        "company": fake_nav.COMPANY,
        "username": fake_nav.USER,
        "password": fake_nav.PASSWORD,
    }
    adapter = SoapAdapter(mapping.load(str(path)), settings)
    imported = r"imports https://schemas\.example\.org/common\.xsd"
    with pytest.raises(ConfigError, match=imported) as e:
        list(adapter.extract("customers"))
    assert e.value.hint == "save it as common.xsd in the mapping's schema_cache folder"
    cache = tmp_path / "xsd"
    cache.mkdir()
    (cache / "common.xsd").write_text(
        '<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x"/>'
    )
    path.write_text('schema_cache = "xsd"\n' + path.read_text())
    adapter = SoapAdapter(mapping.load(str(path)), settings)
    assert adapter.service("customer") is not None  # loads with the cached copy


def test_a_wrong_nav_password_is_an_authentication_error_at_the_wsdl() -> None:
    import responses

    from crm_bridge.errors import AuthenticationError

    from . import fake_nav

    nav = fake_nav.Nav()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        nav.install(rsps)
        settings = {
            "url": fake_nav.BASE,
            "company": fake_nav.COMPANY,
            "username": fake_nav.USER,
            "password": "not-the-password",
        }
        adapter = SoapAdapter(mapping.load("nav"), settings, sleep=lambda s: None)
        with pytest.raises(AuthenticationError, match="HTTP 401") as caught:
            list(adapter.extract("customers"))
    assert "not-the-password" not in str(caught.value) and caught.value.hint


RPC_ENCODED_WSDL = """<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="urn:shop" targetNamespace="urn:shop">
  <message name="ListIn"><part name="page" type="xsd:int"/></message>
  <message name="ListOut"><part name="result" type="xsd:string"/></message>
  <portType name="ShopPort">
    <operation name="ListCustomers">
      <input message="tns:ListIn"/><output message="tns:ListOut"/>
    </operation>
  </portType>
  <binding name="ShopBinding" type="tns:ShopPort">
    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="ListCustomers">
      <soap:operation soapAction="urn:shop#ListCustomers" style="rpc"/>
      <input><soap:body use="encoded" namespace="urn:shop"
        encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"/></input>
      <output><soap:body use="encoded" namespace="urn:shop"
        encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"/></output>
    </operation>
  </binding>
  <service name="Shop"><port name="ShopPort" binding="tns:ShopBinding">
    <soap:address location="http://127.0.0.1:9/soap"/></port></service>
</definitions>
"""


def test_an_rpc_encoded_service_is_refused_in_one_sentence(tmp_path: Path) -> None:
    from crm_bridge.errors import ConfigError

    (tmp_path / "shop.wsdl").write_text(RPC_ENCODED_WSDL)
    text = MAPPING.read_text().replace('erp = "{url}/?wsdl"', 'erp = "shop.wsdl"')
    (tmp_path / "m.toml").write_text(text)
    settings = {"url": "http://127.0.0.1:9", "username": "u", "password": "p"}
    adapter = SoapAdapter(mapping.load(str(tmp_path / "m.toml")), settings)
    with pytest.raises(ConfigError, match="is rpc/encoded") as e:
        list(adapter.extract("customers"))
    assert "init --profile dolibarr" in (e.value.hint or "")


def test_a_remote_wsdl_with_a_schema_cache_loads(tmp_path: Path) -> None:
    (tmp_path / "xsd").mkdir()
    (tmp_path / "m.toml").write_text('schema_cache = "xsd"\n' + MAPPING.read_text())
    with soap_service.running() as url:
        settings = {"url": url, "username": soap_service.USER, "password": soap_service.PASSWORD}
        adapter = SoapAdapter(mapping.load(str(tmp_path / "m.toml")), settings)
        customers = [r for page in adapter.extract("customers") for r in page]
    assert len(customers) == len(soap_service.STORE.customers) > 0


def test_a_mapping_that_maps_nothing_is_an_error_not_an_empty_erp(tmp_path: Path) -> None:
    from crm_bridge.errors import ConfigError

    text = MAPPING.read_text().replace('customer_id = "id"', 'customer_id = "identifier"', 1)
    (tmp_path / "m.toml").write_text(text)
    with soap_service.running() as url:
        settings = {"url": url, "username": soap_service.USER, "password": soap_service.PASSWORD}
        adapter = SoapAdapter(mapping.load(str(tmp_path / "m.toml")), settings)
        with pytest.raises(ConfigError, match=r"finds no customer_id in any of the .*: it maps"):
            list(adapter.extract("customers"))


@pytest.mark.parametrize("profile", ["soap", "rest"])
def test_init_writes_a_starter_mapping_that_loads(tmp_path: Path, profile: str) -> None:
    from click.testing import CliRunner
    from crm_bridge.cli import cli

    from crm_bridge.plugin_manager import load_plugins

    config = tmp_path / "crm-bridge.toml"
    out = CliRunner().invoke(
        cli, ["init", "--profile", profile, "--path", str(config)], obj=load_plugins()
    )
    assert out.exit_code == 0, out.output
    starter = mapping.load(str(tmp_path / "mapping.toml"))
    assert starter.data["protocol"] == profile
    assert {"customers", "invoices"} <= set(starter.data["tables"])
    assert "mapping.toml: a starter mapping" in out.output
