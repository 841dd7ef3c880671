"""TLS that means what it says: ``erp.verify_tls`` wins over REQUESTS_CA_BUNDLE and
CURL_CA_BUNDLE, a refused certificate is reported as such (host and reason) and
not retried, and ``verify_tls = false`` is one clean warning line.

Real TLS on loopback: a self-signed certificate made with ``openssl``, served by a
TLS-terminating relay in front of the real test Tryton (through the CLI), a small
JSON server (the REST adapter) and the spyne SOAP service (the SOAP adapter).  In
every case the environment's bundle says the opposite of ``verify_tls``: the one
that trusts the certificate when ``verify_tls = true``, another CA's otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_bridge.adapters.rest import RestAdapter
from crm_bridge.adapters.soap import SoapAdapter

from crm_bridge import mapping
from crm_bridge.errors import CrmBridgeWarning, RetriableErpError, TlsError

from . import soap_service
from .conftest import Tryton
from .test_cli_errors import assert_clear, run
from .test_soap_adapters import MAPPING
from .tls_proxy import SelfSigned, TlsProxy, json_server, self_signed

ENV_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[SelfSigned, SelfSigned]:
    """The ERP's self-signed certificate, and another CA's (trusted by nobody here)."""
    folder = tmp_path_factory.mktemp("tls")
    return self_signed(folder, "crm-bridge test ERP"), self_signed(folder, "another CA")


def bundles(path: Path) -> dict[str, str]:
    return dict.fromkeys(ENV_BUNDLES, str(path))


def test_tryton_through_the_cli_verify_tls_wins_over_the_environment(
    tryton: Tryton, tmp_path: Path, certs: tuple[SelfSigned, SelfSigned]
) -> None:
    erp, other = certs
    with TlsProxy(tryton.server.port, erp) as proxy:
        tryton.server.url = proxy.url  # what tryton.config writes as erp.url
        config = tmp_path / "crm-bridge.toml"

        # true: requests' own CA bundle, although the environment's trusts the ERP.
        tryton.config(config)
        _set_verify(config, "true")
        proc = run("fields", "provision", cwd=tmp_path, env=bundles(erp.cert))
        assert_clear(
            proc,
            1,
            f"the TLS certificate of 127.0.0.1:{proxy.port} was not accepted: "
            "self-signed certificate",
            "Hint: if the ERP's certificate is signed by your own CA, set erp.verify_tls",
        )
        assert "retried" not in proc.stderr and "broke" not in proc.stderr
        assert proxy.handshakes == 1, "a refused certificate must not be retried"

        # A CA file (relative to the config file): trusted, although the environment's
        # bundle is another CA's.
        (tmp_path / "erp-ca.pem").write_bytes(erp.cert.read_bytes())
        _set_verify(config, '"erp-ca.pem"')
        proc = run("fields", "provision", cwd=tmp_path, env=bundles(other.cert))
        assert proc.returncode == 0, proc.stderr
        assert "34 fields declared" in proc.stdout
        assert proc.stderr == ""

        # false: no verification although the environment's bundle would refuse it;
        # one clean warning line, no Python warning with its source line.
        _set_verify(config, "false")
        proc = run("fields", "provision", cwd=tmp_path, env=bundles(other.cert))
        assert proc.returncode == 0, proc.stderr
        assert "all up to date" in proc.stdout
        assert proc.stderr.splitlines() == [
            f"Warning: TLS certificate verification is OFF for {proxy.url} "
            "(erp.verify_tls = false): anyone on the network path can read the "
            "credentials and the data"
        ]
    assert tryton.rpc("model.crm_bridge.field.search_count", []) == 34


def _set_verify(config: Path, value: str) -> None:
    lines = [ln for ln in config.read_text().splitlines() if not ln.startswith("verify_tls")]
    at = lines.index("[erp]") + 1
    config.write_text("\n".join([*lines[:at], f"verify_tls = {value}", *lines[at:]]) + "\n")


@pytest.fixture
def https_json(certs: tuple[SelfSigned, SelfSigned]) -> Iterator[TlsProxy]:
    with json_server() as port, TlsProxy(port, certs[0]) as proxy:
        yield proxy


def _dolibarr(proxy: TlsProxy, verify: Any) -> RestAdapter:
    settings = {"url": f"{proxy.url}/api/index.php", "api_key": "k-123", "verify_tls": verify}
    return RestAdapter(mapping.load("dolibarr"), settings)


def test_rest_true_refuses_a_self_signed_certificate_once(
    https_json: TlsProxy, certs: tuple[SelfSigned, SelfSigned], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in bundles(certs[0].cert).items():  # the environment trusts it
        monkeypatch.setenv(name, value)
    adapter = _dolibarr(https_json, True)
    with pytest.raises(TlsError) as refused:
        list(adapter.extract("customers"))
    assert str(refused.value) == (
        f"Dolibarr at {https_json.url}/api/index.php: the TLS certificate of "
        f"127.0.0.1:{https_json.port} was not accepted: self-signed certificate"
    )
    assert https_json.handshakes == 1


def test_rest_a_link_broken_during_the_handshake_is_retried(
    https_json: TlsProxy, certs: tuple[SelfSigned, SelfSigned]
) -> None:
    """Only a refused certificate goes unretried; a hang-up mid-handshake is transient."""
    https_json.hang_up = True
    settings = {"url": f"{https_json.url}/api/index.php", "api_key": "k-123"}
    adapter = RestAdapter(mapping.load("dolibarr"), settings, sleep=lambda _s: None)
    with pytest.raises(RetriableErpError, match=r"the TLS connection to 127\.0\.0\.1:\d+ broke"):
        list(adapter.extract("customers"))
    assert https_json.handshakes == 5


@pytest.mark.parametrize("verify", ["ca-file", False])
def test_rest_a_ca_file_or_false_wins_over_the_environment(
    https_json: TlsProxy,
    certs: tuple[SelfSigned, SelfSigned],
    monkeypatch: pytest.MonkeyPatch,
    verify: Any,
) -> None:
    erp, other = certs
    for name, value in bundles(other.cert).items():  # the environment would refuse it
        monkeypatch.setenv(name, value)
    if verify is False:
        with pytest.warns(CrmBridgeWarning, match="TLS certificate verification is OFF"):
            adapter = _dolibarr(https_json, False)
    else:
        adapter = _dolibarr(https_json, str(erp.cert))
    assert list(adapter.extract("customers")) == []
    assert https_json.handshakes >= 1 and https_json.refused == 0


def test_soap_verify_tls_wins_and_a_refused_wsdl_is_not_retried(
    tmp_path: Path, certs: tuple[SelfSigned, SelfSigned], monkeypatch: pytest.MonkeyPatch
) -> None:
    erp, other = certs
    # The service's WSDL names its plain-HTTP address; the mapping sends calls to the relay.
    spec = tmp_path / "soap.toml"
    spec.write_text(MAPPING.read_text() + '\n[addresses]\nerp = "{url}/"\n')
    with soap_service.running() as url, TlsProxy(int(url.rsplit(":", 1)[1]), erp) as proxy:
        settings = {"url": proxy.url, "username": soap_service.USER}
        settings["password"] = soap_service.PASSWORD
        for name, value in bundles(erp.cert).items():
            monkeypatch.setenv(name, value)
        adapter = SoapAdapter(mapping.load(str(spec)), {**settings, "verify_tls": True})
        with pytest.raises(TlsError, match="self-signed certificate"):
            list(adapter.extract("customers"))
        assert proxy.handshakes == 1

        for name, value in bundles(other.cert).items():
            monkeypatch.setenv(name, value)
        adapter = SoapAdapter(mapping.load(str(spec)), {**settings, "verify_tls": str(erp.cert)})
        rows = [row for page in adapter.extract("customers") for row in page]
        assert {row["customer_id"] for row in rows} == set(soap_service.STORE.customers)


@pytest.mark.parametrize(
    ("value", "phrases"),
    [
        ('"maybe"', ["config key erp.verify_tls: 'maybe' is neither true, false nor an existing"]),
        ('"true"', ["config key erp.verify_tls: 'true'", "write true or false without quotes"]),
        ('"not-a-cert.txt"', ["config key erp.verify_tls:", "not-a-cert.txt holds no PEM"]),
        ("1", ["config key erp.verify_tls: 1 is not of type 'boolean', 'string'"]),
        ('""', ["config key erp.verify_tls: '' should be non-empty"]),
    ],
)
def test_verify_tls_takes_true_false_or_an_existing_file(
    tmp_path: Path, value: str, phrases: list[str]
) -> None:
    (tmp_path / "not-a-cert.txt").write_text("hello\n")
    (tmp_path / "crm-bridge.toml").write_text(
        '[erp]\nadapter = "tryton"\nurl = "https://127.0.0.1:1"\ndatabase = "d"\n'
        f'username = "u"\npassword = "${{ERP_PW}}"\nverify_tls = {value}\n'
    )
    proc = run("sync", "--dry-run", cwd=tmp_path, env={"ERP_PW": "secret-pw-123"})
    assert_clear(proc, 2, *phrases)


def test_a_secret_written_in_the_config_file_gets_a_warning(tryton: Tryton, tmp_path: Path) -> None:
    config = tryton.config(tmp_path / "crm-bridge.toml", password="admin")
    proc = run("fields", "provision", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"Warning: config key erp.password is written in plain text in {config}: use "
        'password = "${CRM_BRIDGE_ERP_PASSWORD}" (an environment variable) or '
        '"${file:PATH}" (a file only its owner may read)'
    ]
    tryton.config(config)  # password = "${...}": no warning
    proc = run("fields", "provision", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


def test_rest_secret_keys_in_plain_text_are_warned_about_too(tmp_path: Path) -> None:
    with json_server() as port:
        (tmp_path / "crm-bridge.toml").write_text(
            f'[erp]\nadapter = "dolibarr"\nurl = "http://127.0.0.1:{port}/api/index.php"\n'
            'api_key = "plain-api-key-42"\n'
        )
        proc = run("doctor", cwd=tmp_path)
    # It ran, with the key: Dolibarr answered (an empty list: doctor says no customer
    # is visible) instead of refusing the credentials.
    assert "read         Dolibarr at http://127.0.0.1" in proc.stdout, proc.stdout
    assert "rejected the credentials" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith(
        "Warning: config key erp.api_key is written in plain text in "
        f"{tmp_path / 'crm-bridge.toml'}: use api_key = "
        '"${CRM_BRIDGE_ERP_API_KEY}"'
    )
    assert "plain-api-key-42" not in proc.stdout + proc.stderr


def test_proxies_still_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify_tls wins over the environment's CA bundles, not over its proxies."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with json_server() as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        settings = {"url": "http://erp.invalid/api/index.php", "api_key": "k-123"}
        adapter = RestAdapter(mapping.load("dolibarr"), settings)
        # erp.invalid resolves nowhere: only the proxy can answer.
        assert list(adapter.extract("customers")) == []
