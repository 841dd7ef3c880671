"""The fault suite for the declarative adapters, through responses: every transient
fault at extract and at apply is survived (same rows, same writes); a permanent one
stops with a clear message.  (Tryton's faults go through tests/faultproxy.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from crm_bridge.adapters.rest import RestAdapter
from crm_bridge.adapters.soap import SoapAdapter

from crm_bridge import mapping
from crm_bridge.adapter import Batch
from crm_bridge.errors import ErpError, RetriableErpError

from . import fake_erps, fake_nav
from .fake_erps import FAULTS


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def _odoo(rsps: responses.RequestsMock, sleeps: list[float]) -> tuple[Any, Any]:
    erp = fake_erps.Odoo()
    erp.install(rsps)
    settings = {"url": erp.base, "api_key": erp.api_key, "database": erp.database}
    adapter = RestAdapter(mapping.load("odoo"), settings, sleep=sleeps.append)
    adapter.provision([])  # logs the lookups in; faults below hit real work
    return erp, adapter


def _nav(rsps: responses.RequestsMock, sleeps: list[float]) -> tuple[Any, Any]:
    erp = fake_nav.Nav()
    erp.install(rsps)
    settings = {
        "url": fake_nav.BASE,
        "company": fake_nav.COMPANY,
        "username": fake_nav.USER,
        "password": fake_nav.PASSWORD,
    }
    adapter = SoapAdapter(mapping.load("nav"), settings, sleep=sleeps.append)
    adapter.service("customer")  # WSDL loaded before the faults
    return erp, adapter


ADAPTERS = {
    "odoo-rest": (_odoo, "res.partner/search_read", "res.partner/write"),
    "nav-soap": (_nav, "Customer.ReadMultiple", "Customer.UpdateMultiple"),
}


def _customers(adapter: Any) -> list[dict[str, Any]]:
    return [r for page in adapter.extract("customers") for r in page]


@pytest.mark.parametrize("kind", FAULTS)
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_transient_fault_at_extract_is_retried(
    mock: responses.RequestsMock, name: str, kind: str
) -> None:
    make, read, _ = ADAPTERS[name]
    sleeps: list[float] = []
    erp, adapter = make(mock, sleeps)
    clean = _customers(adapter)
    erp.fail_on, erp.fail_next = read, [kind]
    assert _customers(adapter) == clean
    assert erp.fail_next == [] and len(sleeps) == 1
    if kind == "429":
        assert sleeps == [7.0]  # Retry-After honoured


@pytest.mark.parametrize("kind", FAULTS)
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_transient_fault_at_apply_is_retried_and_written_once(
    mock: responses.RequestsMock, name: str, kind: str
) -> None:
    make, _, write = ADAPTERS[name]
    sleeps: list[float] = []
    erp, adapter = make(mock, sleeps)
    ids = tuple(r["customer_id"] for r in _customers(adapter))[:2]
    if name == "odoo-rest":
        adapter.provision([_field()])
    erp.fail_on, erp.fail_next = write, [kind]
    result = adapter.write([Batch(ids, {"conf_score": 42})])
    assert sorted(result.written) == sorted(ids) and not result.rejected
    assert erp.fail_next == [] and len(sleeps) == 1
    # Read back raw from the ERP's own records, not through the adapter.
    assert {cid: _raw_score(name, erp, cid) for cid in ids} == dict.fromkeys(ids, 42)


def _raw_score(name: str, erp: Any, customer_id: str) -> int | None:
    """conf_score as the fake ERP holds it (NAV keeps text)."""
    if name == "odoo-rest":
        value = erp.models["res.partner"][int(customer_id)].get("x_crm_conf_score")
    else:
        row = next(r for r in erp.pages["Customer"] if r["No"] == customer_id)
        value = row.get("CRM_conf_score")
    return None if value in (None, False) else int(value)


def test_a_fault_that_does_not_stop_is_reported_after_the_last_attempt(
    mock: responses.RequestsMock,
) -> None:
    sleeps: list[float] = []
    erp, adapter = _nav(mock, sleeps)
    erp.fail_on, erp.fail_next = "Customer.ReadMultiple", ["reset"] * 9
    with pytest.raises(RetriableErpError, match="cannot reach Dynamics NAV") as caught:
        _customers(adapter)
    assert len(sleeps) == 4 and caught.value.hint
    assert fake_nav.PASSWORD not in str(caught.value)


def test_a_soap_fault_on_read_is_a_clear_error_not_a_retry(
    mock: responses.RequestsMock,
) -> None:
    sleeps: list[float] = []
    _erp, adapter = _nav(mock, sleeps)
    with pytest.raises(ErpError, match="does not exist"):
        adapter.call(
            {"service": "customer", "operation": "Read", "args": {"No": "NOPE"}}, adapter.vars
        )
    assert sleeps == []


def _field() -> Any:
    from crm_bridge.testing import CONFORMANCE_FIELDS

    return next(f for f in CONFORMANCE_FIELDS if f.name == "conf_score")
