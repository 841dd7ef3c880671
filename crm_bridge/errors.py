"""Errors that reach the user: each says what went wrong, where, and what to do.

The CLI prints ``str(error)`` and the hint on one line each, and exits with
``error.exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations


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
    """The ERP could not be reached or refused a request."""


class RetriableErpError(ErpError):
    """A transient ERP failure (connection, timeout, 429, 5xx): worth retrying."""

    def __init__(
        self, message: str, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class AuthenticationError(ErpError):
    """The ERP rejected the credentials."""


class StateError(CrmBridgeError):
    """The local state store is unusable (locked by another run, corrupt...)."""


class RefusedError(ErpError):
    """The ERP understood a request about one record and refused it (validation,
    unknown record): the record is reported as rejected, the run goes on."""


def from_status(
    status: int, where: str, action: str, message: str = "", retry_after: str | None = None
) -> ErpError:
    """The error for an HTTP (or SOAP transport) status other than success."""
    detail = f": {message}" if message else ""
    if status == 429 or status >= 500:
        return RetriableErpError(
            f"{where} answered HTTP {status} to {action}{detail}",
            hint="the ERP failed or is overloaded; crm-bridge retried. If it keeps failing on "
            "the same request, the ERP's error log says why",
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if status == 401:
        return AuthenticationError(
            f"{where} rejected the credentials (HTTP 401) on {action}{detail}",
            hint="check the API key / user and password in the [erp] table",
        )
    if status == 403:
        return ErpError(
            f"{where} denied {action} (HTTP 403){detail}",
            hint="give the API user the rights listed on the profile's docs page",
        )
    return RefusedError(f"{where} refused {action} (HTTP {status}){detail}")
