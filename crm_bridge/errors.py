"""Errors that reach the user: each says what went wrong, where, and what to do.

The CLI prints ``str(error)`` and the hint on one line each, and exits with
``error.exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from crm_bridge.i18n import _


class CrmBridgeError(Exception):
    """Base class: a message, an optional hint, and the process exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(CrmBridgeError):
    """The configuration file or the command line is wrong (fix it and rerun)."""

    exit_code = 2


class PluginError(CrmBridgeError):
    """A plugin is unknown, failed to load, or returned bad output."""


class ErpError(CrmBridgeError):
    """The ERP could not be reached or refused a request.

    Raised by ``Adapter.write`` after the ERP had already confirmed some customers
    of the call (single-record ERPs), it carries their ``WriteResult`` as
    ``partial``: the core records them, and resends only the others.
    """

    partial: Any = None


class RetriableErpError(ErpError):
    """A transient ERP failure (connection, timeout, 429, 5xx): worth retrying."""

    def __init__(
        self, message: str, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class TlsError(ErpError):
    """The ERP's TLS certificate was not accepted (or TLS failed): not retried, since
    it fails the same way every time until the certificate or erp.verify_tls changes."""


class AuthenticationError(ErpError):
    """The ERP rejected the credentials."""


class StateError(CrmBridgeError):
    """The local state store is unusable (locked by another run, corrupt...)."""


class CrmBridgeWarning(UserWarning):
    """Something works but deserves attention (TLS verification off, a secret written
    in the config file); the CLI prints it as one ``Warning:`` line."""


class RefusedError(ErpError):
    """The ERP understood a request about one record and refused it (validation,
    unknown record): the record is reported as rejected, the run goes on."""


def from_status(
    status: int, where: str, action: str, message: str = "", retry_after: str | None = None
) -> ErpError:
    """The error for an HTTP (or SOAP transport) status other than success."""
    detail = f": {message}" if message else ""
    said = {"where": where, "status": status, "action": action, "detail": detail}
    if status == 429 or status >= 500:
        return RetriableErpError(
            _("{where} answered HTTP {status} to {action}{detail}").format(**said),
            hint=_(
                "the ERP failed or is overloaded; crm-bridge retried. If it keeps failing on "
                "the same request, the ERP's error log says why"
            ),
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if status == 401:
        return AuthenticationError(
            _("{where} rejected the credentials (HTTP 401) on {action}{detail}").format(**said),
            hint=_("check the API key / user and password in the [erp] table"),
        )
    if status == 403:
        return ErpError(
            _("{where} denied {action} (HTTP 403){detail}").format(**said),
            hint=_("give the API user the rights listed on the profile's docs page"),
        )
    return RefusedError(_("{where} refused {action} (HTTP {status}){detail}").format(**said))


def from_tls(where: str, error: BaseException) -> ErpError:
    """The error for a failed TLS handshake (``requests.exceptions.SSLError``): the
    host and the reason OpenSSL gave (``self-signed certificate``, ``Hostname
    mismatch...``, ``certificate has expired``, ``wrong version number``...), not
    retried; a connection that broke during the handshake is retried."""
    request = getattr(error, "request", None)
    host = urlsplit(str(getattr(request, "url", "") or "")).netloc or where
    cause = _ssl_cause(error)
    if isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        return RetriableErpError(
            _("{where}: the TLS connection to {host} broke: {reason}").format(
                where=where, host=host, reason=cause.reason or cause
            ),
            hint=_("check the network and any proxy in front of the ERP; crm-bridge retried"),
        )
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or cause.reason or str(cause)
        return TlsError(
            _("{where}: the TLS certificate of {host} was not accepted: {reason}").format(
                where=where, host=host, reason=reason
            ),
            hint=_(
                "if the ERP's certificate is signed by your own CA, set erp.verify_tls to "
                "that CA's PEM file; check that erp.url names the host the certificate is for"
            ),
        )
    reason = (cause.reason or str(cause)) if cause else str(error)
    return TlsError(
        _("{where}: TLS with {host} failed: {reason}").format(
            where=where, host=host, reason=reason
        ),
        hint=_("check that erp.url uses the right scheme (https://) and port, and erp.verify_tls"),
    )


def _ssl_cause(error: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` somewhere inside requests' and urllib3's wrappers."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        item = todo.pop(0)
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLError):
            return item
        todo.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return None
