"""The HTTP session every adapter sends its requests through (REST, SOAP, JSON-RPC).

TLS verification is what ``erp.verify_tls`` says, whatever the environment
says: requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override a
session's ``verify`` (so ``verify_tls = false`` still verified and a CA file
was ignored); :class:`ErpSession` keeps everything else requests takes from
the environment (``HTTPS_PROXY``, ``NO_PROXY``, ``.netrc``).  ``true`` means
requests' own CA bundle (certifi); a private CA goes in ``verify_tls`` as a
file.  ``false`` warns once, as a :class:`CrmBridgeWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import requests

from crm_bridge import retry
from crm_bridge.errors import CrmBridgeWarning


class ErpSession(requests.Session):
    """A ``requests.Session`` whose ``verify`` the environment cannot override."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["verify"] = self.verify if verify is None else verify
        return settings


def session(url: str, verify: bool | str = True, per_second: float | None = None) -> ErpSession:
    """A session for the ERP at ``url``: TLS verification as configured, the rate limit."""
    http = ErpSession()
    http.verify = verify
    if verify is False:
        warnings.warn(
            f"TLS certificate verification is OFF for {url} (erp.verify_tls = false): "
            "anyone on the network path can read the credentials and the data",
            CrmBridgeWarning,
            stacklevel=2,
        )
    retry.limit_rate(http, per_second)
    return http


def from_settings(url: str, settings: Mapping[str, Any]) -> ErpSession:
    """:func:`session` from an adapter's ``[erp]`` table."""
    return session(url, settings.get("verify_tls", True), settings.get("requests_per_second"))
