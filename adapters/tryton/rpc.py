"""A small JSON-RPC client for trytond: session login, tagged values, retries.

Login once with ``common.db.login`` and send ``Authorization: Session ...`` on
every call (Basic auth re-hashes the password on every call: ~15x slower).
The user's preferences are the context of every model call.  A 401 (expired
session) logs in again; connection errors, timeouts, 429 and 5xx go through
crm-bridge's one retry policy.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import requests

from crm_bridge import retry, transport
from crm_bridge.errors import (
    AuthenticationError,
    ErpError,
    RefusedError,
    RetriableErpError,
    from_tls,
)
from crm_bridge.i18n import _


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def _object_hook(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind is None:
        return obj
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "datetime":
        return dt.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj.get("hour", 0),
            obj.get("minute", 0),
            obj.get("second", 0),
            obj.get("microsecond", 0),
        )
    if kind == "time":
        return dt.time(obj.get("hour", 0), obj.get("minute", 0), obj.get("second", 0))
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    if kind == "bytes":
        return base64.decodebytes(obj["base64"].encode())
    return obj


class TrytonRPC:
    def __init__(
        self,
        url: str,
        database: str,
        username: str,
        password: str,
        timeout: float = 120.0,
        verify: bool | str = True,
        sleep: Any = None,
    ) -> None:
        self.endpoint = f"{url.rstrip('/')}/{database}/rpc/"
        self.url = url
        self.database = database
        self.username = username
        self._password = password
        self.timeout = timeout
        self.http: requests.Session = transport.session(url, verify)
        self.http.headers["Content-Type"] = "application/json"
        self.context: dict[str, Any] = {}
        self._sleep = sleep
        self._id = 0
        self.calls = 0

    # -- transport ----------------------------------------------------------
    def _post(self, method: str, params: list[Any], endpoint: str | None = None) -> Any:
        self._id += 1
        body = json.dumps({"id": self._id, "method": method, "params": params}, default=_default)
        where = _("Tryton at {url} (database {database})").format(
            url=self.url, database=self.database
        )
        try:
            response = self.http.post(endpoint or self.endpoint, data=body, timeout=self.timeout)
        except requests.Timeout:
            raise RetriableErpError(
                _("{where} did not answer {method} in {seconds}s").format(
                    where=where, method=method, seconds=f"{self.timeout:.0f}"
                ),
                hint=_("check the server load or raise erp.timeout"),
            ) from None
        except requests.exceptions.SSLError as exc:
            raise from_tls(where, exc) from None
        except requests.ConnectionError as exc:
            if "NewConnectionError" in repr(exc) or "refused" in str(exc).lower():
                raise RetriableErpError(
                    _("cannot connect to {where}").format(where=where),
                    hint=_("check erp.url and that the Tryton server is running"),
                ) from None
            raise RetriableErpError(
                f"the connection to {where} broke during {method}",
                hint="check the network and the server's logs; crm-bridge retried",
            ) from None
        except requests.exceptions.ChunkedEncodingError:
            raise RetriableErpError(
                f"{where} sent an incomplete answer to {method}",
                hint="check the network and the server's logs; crm-bridge retried",
            ) from None
        self.calls += 1
        status = response.status_code
        if status == 401:
            raise _SessionExpired()
        if status == 429 or status >= 500:
            after = response.headers.get("Retry-After")
            raise RetriableErpError(
                f"{where} answered HTTP {status} to {method}",
                hint="the server is overloaded or failing; try again later",
                retry_after=float(after) if after and after.isdigit() else None,
            )
        if status == 404:
            raise ErpError(
                _("{where}: database not found (HTTP 404)").format(where=where),
                hint=_("check erp.database"),
            )
        if status >= 400:
            raise ErpError(f"{where} answered HTTP {status} to {method}")
        try:
            payload = json.loads(response.text, object_hook=_object_hook)
        except ValueError:
            raise RetriableErpError(f"{where} sent a non-JSON answer to {method}") from None
        if not isinstance(payload, dict):
            raise RetriableErpError(f"{where} sent an unexpected answer to {method}")
        if payload.get("error"):
            raise RefusedError(f"{where} refused {method}: {_error_text(payload['error'])}")
        return payload.get("result")

    def _with_retry(self, method: str, params: list[Any]) -> Any:
        return retry.call(lambda: self._post(method, params), sleep=self._sleep)

    def version(self) -> str:
        """The server version (no login needed)."""
        url = f"{self.url.rstrip('/')}/rpc/"
        return str(
            retry.call(lambda: self._post("common.server.version", [], url), sleep=self._sleep)
        )

    # -- session ------------------------------------------------------------
    def login(self) -> None:
        self.http.headers.pop("Authorization", None)
        try:
            result = self._with_retry(
                "common.db.login", [self.username, {"password": self._password}, "en"]
            )
        except ErpError as exc:
            if "LoginException" in str(exc) or "password" in str(exc).lower():
                raise self._login_refused() from None
            raise
        except _SessionExpired:
            raise self._login_refused() from None
        if not result:
            raise self._login_refused()
        user_id, session = result[0], result[1]
        token = base64.b64encode(f"{self.username}:{user_id}:{session}".encode()).decode()
        self.http.headers["Authorization"] = f"Session {token}"
        self.context = {}
        self.context = self.call("model.res.user.get_preferences", True)

    def _login_refused(self) -> AuthenticationError:
        return AuthenticationError(
            _("Tryton at {url} rejected the login of user {user!r}").format(
                url=self.url, user=self.username
            ),
            hint=_("check erp.username and the password (erp.password)"),
        )

    def call(self, method: str, *params: Any, context: Mapping[str, Any] | None = None) -> Any:
        """Call ``method``; model calls get the user's context appended, with
        ``context`` over it (``{"language": "ru"}``: read and write in Russian)."""
        if "Authorization" not in self.http.headers:
            self.login()
        try:
            return self._with_retry(method, self._args(method, params, context))
        except _SessionExpired:
            self.login()
            return self._with_retry(method, self._args(method, params, context))

    def _args(
        self, method: str, params: tuple[Any, ...], context: Mapping[str, Any] | None
    ) -> list[Any]:
        if not method.startswith("model."):
            return list(params)
        return [*params, {**self.context, **context} if context else self.context]

    def close(self) -> None:
        self.http.close()


class _SessionExpired(Exception):
    pass


def _error_text(error: Any) -> str:
    if isinstance(error, list) and error:
        kind = error[0]
        detail = error[1] if len(error) > 1 else ""
        if isinstance(detail, list) and detail:
            detail = detail[0]
        return f"{kind}: {detail}" if detail else str(kind)
    return str(error)
