"""The declarative SOAP adapter on zeep: the services a mapping file describes.

WSDLs come from local files next to the mapping or from the ERP's own address;
any schema they import must be in the mapping's schema cache (by file name):
nothing is fetched from elsewhere at run time.  Credentials go as HTTP basic
auth, a WS-Security UsernameToken, a SOAP header element, or in the request
body (placeholders in ``args``).  SOAP faults are refusals of the record;
transport errors are classified like HTTP errors and retried by the one policy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.xsd
from zeep.wsse.username import UsernameToken

from crm_bridge import mapping, retry, transport
from crm_bridge.declarative import DeclarativeAdapter, settings_schema
from crm_bridge.errors import (
    AuthenticationError,
    ConfigError,
    ErpError,
    RefusedError,
    RetriableErpError,
    from_status,
    from_tls,
)

CONFIG_SCHEMA = settings_schema("company", "username", "password")
SECRETS = ("password",)
# Fault codes and texts that mean "try again", not "this record is wrong".
TRANSIENT_FAULTS = ("busy", "timeout", "deadlock", "temporarily", "try again")
AUTH_FAULTS = ("password", "authenticat", "unauthori", "credentials")


SOAP_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"


def _encoded(url: str) -> ConfigError:
    return ConfigError(
        f"the web service at {url} is rpc/encoded (SOAP section 5 encoding), which "
        "crm-bridge cannot use (zeep reads document/literal and rpc/literal services only)",
        hint="use the ERP's REST API instead: for Dolibarr, crm-bridge init --profile dolibarr",
    )


class OfflineTransport(zeep.Transport):
    """Loads WSDL and XSD documents from local files, the schema cache, or the
    ERP's own address; refuses anything else (no internet at run time), and
    refuses an rpc/encoded service in one sentence instead of a missing schema."""

    def __init__(self, schema_cache: Path | None, erp_host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # (zeep's own ``cache`` attribute stays zeep's)
        self.schema_cache, self.erp_host = schema_cache, erp_host

    def load(self, url: str) -> bytes:
        parsed = urlparse(url)
        if url.rstrip("/") == SOAP_ENCODING.rstrip("/"):
            raise _encoded(self.erp_host or url)
        if parsed.scheme in ("http", "https") and parsed.netloc != self.erp_host:
            name = Path(parsed.path).name
            cached = self.schema_cache / name if self.schema_cache else None
            if cached is None or not cached.is_file():
                raise ConfigError(
                    f"the WSDL imports {url}, which is not in the schema cache",
                    hint=f"save it as {name} in the mapping's schema_cache folder",
                )
            return cached.read_bytes()
        data: bytes = super().load(url)
        if b'use="encoded"' in data or b"use='encoded'" in data:
            raise _encoded(url)
        return data


class SoapAdapter(DeclarativeAdapter):
    def __init__(self, spec: mapping.MappingFile, settings: Mapping[str, Any], sleep: Any = None):
        super().__init__(spec, settings)
        self.base = str(settings["url"]).rstrip("/")
        self.vars["url"] = self.base
        session = transport.from_settings(self.base, settings)
        # zeep's TransportError has no headers: keep Retry-After from the answer itself
        # (per thread: writes run in parallel).
        self._answer = threading.local()

        def remember(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self._answer.retry_after = response.headers.get("Retry-After")

        session.hooks["response"].append(remember)
        auth = spec.data.get("auth", {"type": "none"})
        self.auth = auth
        if auth["type"] == "basic":
            session.auth = (
                mapping.render(auth.get("username", "{username}"), self.vars),
                mapping.render(auth.get("password", "{password}"), self.vars),
            )
        self.timeout = float(settings.get("timeout", 120))
        cache = spec.data.get("schema_cache")
        self.transport = OfflineTransport(
            spec.folder / cache if cache else None,
            urlparse(self.base).netloc,
            session=session,
            timeout=self.timeout,
            operation_timeout=self.timeout,
        )
        self._wsse = (
            UsernameToken(
                mapping.render(auth.get("username", "{username}"), self.vars),
                mapping.render(auth.get("password", "{password}"), self.vars),
            )
            if auth["type"] == "wsse"
            else None
        )
        self._services: dict[str, Any] = {}
        self._sleep = sleep
        self.calls = 0

    def close(self) -> None:
        self.transport.session.close()

    def service(self, name: str) -> Any:
        """The zeep service proxy of ``name``, bound to the ERP's address."""
        if name not in self._services:
            wsdls = self.mapping.data.get("wsdl", {})
            if name not in wsdls:
                raise ConfigError(f"the mapping calls service {name!r}, which has no wsdl entry")
            location = mapping.render(wsdls[name], self.vars)
            if not location.startswith(("http://", "https://")):
                location = str(self.mapping.folder / location)
            client = retry.call(lambda: self._client(name, location), sleep=self._sleep)
            address = self.mapping.data.get("addresses", {}).get(name)
            binding = next(iter(client.wsdl.bindings))
            self._services[name] = (
                client.create_service(binding, mapping.render(address, self.vars))
                if address
                else client.service
            )
        return self._services[name]

    def _client(self, name: str, location: str) -> zeep.Client:
        action = f"reading the WSDL of {name}"
        try:
            return zeep.Client(location, transport=self.transport, wsse=self._wsse)
        except requests.HTTPError as exc:
            raise from_status(exc.response.status_code, self.where, action) from None
        except requests.exceptions.SSLError as exc:
            raise from_tls(self.where, exc) from None
        except requests.RequestException:
            raise RetriableErpError(
                f"cannot load the WSDL of {name} from {location}",
                hint="check erp.url and that the web service is published",
            ) from None
        except (zeep.exceptions.XMLSyntaxError, zeep.exceptions.XMLParseError) as exc:
            raise ErpError(
                f"{location} is not a WSDL ({exc})",
                hint="check erp.url and the service names the ERP publishes",
            ) from None

    def call(
        self, request: Mapping[str, Any], variables: Mapping[str, Any], empty: Sequence[int] = ()
    ) -> Any:
        name, operation = request["service"], request["operation"]
        args = mapping.render(request.get("args", {}), variables)
        headers = (
            {k: mapping.render(v, variables) for k, v in self.auth.get("element", {}).items()}
            if self.auth["type"] == "soap_header"
            else None
        )
        action = f"{name}.{operation}"
        proxy = self.service(name)

        def once() -> Any:
            try:
                kwargs = {"_soapheaders": headers} if headers else {}
                with retry.transport_errors(self.where, action, self.timeout):
                    answer = getattr(proxy, operation)(**args, **kwargs)
            except zeep.exceptions.Fault as fault:
                text = f"{fault.message} ({fault.code})" if fault.code else str(fault.message)
                if any(word in text.lower() for word in TRANSIENT_FAULTS):
                    raise RetriableErpError(f"{self.where} answered {action}: {text}") from None
                if any(word in text.lower() for word in AUTH_FAULTS):
                    raise AuthenticationError(
                        f"{self.where} rejected the credentials on {action}: {text}",
                        hint="check erp.username and erp.password",
                    ) from None
                raise RefusedError(f"{self.where} refused {action}: {text}") from None
            except zeep.exceptions.XMLSyntaxError:  # an HTML error page from a proxy...
                raise RetriableErpError(
                    f"{self.where} answered {action} with something that is not SOAP",
                    hint="check erp.url and any proxy in front of the ERP; crm-bridge retried",
                ) from None
            except zeep.exceptions.XMLParseError as exc:
                raise ErpError(
                    f"{self.where} answered {action} with XML its WSDL does not describe: {exc}",
                    hint="the web service changed since its WSDL was read; check the mapping",
                ) from None
            except zeep.exceptions.TransportError as exc:
                if exc.status_code in empty:
                    return None
                raise from_status(
                    exc.status_code,
                    self.where,
                    action,
                    retry_after=getattr(self._answer, "retry_after", None),
                ) from None
            finally:
                self.calls += 1
            return _plain(zeep.helpers.serialize_object(answer, dict))

        return retry.call(once, sleep=self._sleep)

    def encode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """zeep sends Decimals, dates and booleans as XML Schema wants them; a cleared
        value goes as ``xsi:nil`` (zeep would leave a None out, keeping the old value)."""
        return {
            mapping.erp_name(self.field_name, k): zeep.xsd.Nil if v is None else v
            for k, v in values.items()
        }


def _plain(value: Any) -> Any:
    """zeep's answer as dicts, lists and scalars (Decimals kept, dates as dates)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
