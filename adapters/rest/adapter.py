"""The declarative REST adapter: any JSON API a mapping file describes.

Auth by API-key header, bearer token, basic, or a session login whose answer
holds the token (``{token}`` in later requests); JSON in, JSON out; the HTTP
statuses classified once (``crm_bridge.errors.from_status``) and transient
failures retried by crm-bridge's one policy, honouring ``Retry-After``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from crm_bridge import mapping, retry, transport
from crm_bridge.declarative import DeclarativeAdapter, settings_schema
from crm_bridge.errors import AuthenticationError, RefusedError, RetriableErpError, from_status

CONFIG_SCHEMA = settings_schema(
    "database", "username", "password", "api_key", "api_secret", "token", "company"
)
SECRETS = ("password", "token", "api_key", "api_secret")


class RestAdapter(DeclarativeAdapter):
    def __init__(self, spec: mapping.MappingFile, settings: Mapping[str, Any], sleep: Any = None):
        super().__init__(spec, settings)
        self.base = str(settings["url"]).rstrip("/")
        self.timeout = float(settings.get("timeout", 120))
        self.http: requests.Session = transport.from_settings(self.base, settings)
        self.http.headers["Accept"] = "application/json"
        self.auth: dict[str, Any] = spec.data.get("auth", {"type": "none"})
        self.errors: dict[str, Any] = spec.data.get("errors", {})
        self._sleep = sleep
        self._logged_in = False
        self.calls = 0  # requests sent, counted under a lock: writes and reads run in threads
        self._count = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- auth ----------------------------------------------------------------
    def _authenticate(self) -> None:
        kind = self.auth["type"]
        header = self.auth.get("header", "Authorization")
        if kind == "session":
            login = self.auth["login"]
            try:
                answer = self._send(login, self.vars, (), "login")
            except (RefusedError, AuthenticationError):
                answer = None
            token = mapping.get(answer, self.auth.get("token", "")) if answer else None
            if not token:
                raise AuthenticationError(
                    f"{self.where} rejected the login of {self.vars.get('username', 'the user')!r}",
                    hint="check erp.username and erp.password (or the API key)",
                )
            self.vars["token"] = token
        if kind in ("header", "bearer") or (kind == "session" and "value" in self.auth):
            value = mapping.render(self.auth.get("value", "Bearer {token}"), self.vars)
            self.http.headers[header] = value
        elif kind == "basic":
            self.http.auth = (
                mapping.render(self.auth.get("username", "{username}"), self.vars),
                mapping.render(self.auth.get("password", "{password}"), self.vars),
            )
        self._logged_in = True

    # -- transport -----------------------------------------------------------
    def call(
        self, request: Mapping[str, Any], variables: Mapping[str, Any], empty: Sequence[int] = ()
    ) -> Any:
        if not self._logged_in:
            self._authenticate()
        if "token" in self.vars:  # a session token the request was built without
            variables = {**variables, "token": self.vars["token"]}
        try:
            return self._send(request, variables, empty)
        except AuthenticationError:
            if self.auth["type"] != "session":
                raise
            self._authenticate()  # the session expired: log in once more
            return self._send(request, {**variables, "token": self.vars["token"]}, empty)

    def _send(
        self,
        request: Mapping[str, Any],
        variables: Mapping[str, Any],
        empty: Sequence[int],
        action: str | None = None,
    ) -> Any:
        method = request.get("method", "GET")
        cursor = variables.get("cursor")
        if isinstance(cursor, str) and cursor.startswith(("http://", "https://")):
            url, params = cursor, None  # a "next" link carries its own query
        else:
            path = mapping.render(request.get("path", ""), variables)
            url = path if path.startswith(("http://", "https://")) else self.base + path
            params = mapping.render(request.get("params"), variables)
        body = mapping.render(request["body"], variables) if "body" in request else None
        headers = mapping.render(request.get("headers", {}), variables)
        action = action or f"{method} {url.removeprefix(self.base)}"

        def once() -> Any:
            return self._once(method, url, params, body, headers, action, empty)

        return retry.call(once, sleep=self._sleep)

    def _once(
        self,
        method: str,
        url: str,
        params: Any,
        body: Any,
        headers: Mapping[str, str],
        action: str,
        empty: Sequence[int],
    ) -> Any:
        with retry.transport_errors(self.where, action, self.timeout):
            response = self.http.request(
                method, url, params=params, json=body, headers=headers, timeout=self.timeout
            )
        with self._count:
            self.calls += 1
        status = response.status_code
        if status in empty:
            return None
        try:
            answer = response.json() if response.content else None
        except ValueError:
            answer = None
            if status < 300:
                raise RetriableErpError(
                    f"{self.where} sent a non-JSON answer to {action}",
                    hint="check erp.url: it should be the API's base address",
                ) from None
        if status >= 300:
            raise from_status(
                status,
                self.where,
                action,
                self._message(answer, response.text),
                response.headers.get("Retry-After"),
            )
        error = mapping.get(answer, self.errors["path"]) if "path" in self.errors else None
        if error:
            message = self._message(answer, json.dumps(error)[:300])
            raise RefusedError(f"{self.where} refused {action}: {message}")
        return answer

    def _message(self, answer: Any, text: str) -> str:
        message = mapping.get(answer, self.errors["message"]) if "message" in self.errors else None
        return str(message if message else text[:300]).strip()
