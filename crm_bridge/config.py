"""The configuration file: ``crm-bridge.toml``, validated before anything runs.

Secrets never live in the file: ``${NAME}`` is replaced by the environment
variable NAME and ``${file:PATH}`` by the content of a file that only its owner
may read (a group- or world-readable one is refused).  Every value that came
from either is remembered as a secret, so that it is redacted wherever
crm-bridge prints anything; a secret written in the file itself is accepted
with a warning.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from crm_bridge import jsonschemas
from crm_bridge.errors import ConfigError, CrmBridgeWarning
from crm_bridge.i18n import _

DEFAULT_PATH = Path("crm-bridge.toml")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FILE_REF = re.compile(r"\$\{file:([^}]+)\}")


@dataclass
class Config:
    path: Path
    data: dict[str, Any]
    secrets: set[str] = field(default_factory=set)
    # Key paths whose value came from ${NAME} or ${file:PATH}, not from the file.
    references: set[tuple[str, ...]] = field(default_factory=set)

    @property
    def erp(self) -> dict[str, Any]:
        return dict(self.data["erp"])

    @property
    def batch_size(self) -> int:
        return int(self.data.get("sync", {}).get("batch_size", 500))

    @property
    def keep_edited_fields(self) -> frozenset[str]:
        """Fields whose values edited by a person in the ERP are kept (policy "keep")."""
        policies = self.data.get("sync", {}).get("field_policy", {})
        return frozenset(name for name, policy in policies.items() if policy == "keep")

    @property
    def retention_days(self) -> float:
        return float(self.data.get("state", {}).get("retention_days", 180))

    @property
    def full_refresh_days(self) -> float:
        return float(self.data.get("sync", {}).get("full_refresh_days", 7))

    @property
    def plugin_timeout(self) -> float:
        return float(self.data.get("sync", {}).get("plugin_timeout", 600))

    @property
    def max_error_rate(self) -> float:
        return float(self.data.get("sync", {}).get("max_error_rate", 0.5))

    @property
    def auto_provision(self) -> bool:
        return bool(self.data.get("sync", {}).get("auto_provision", False))

    @property
    def notify(self) -> dict[str, Any]:
        """The ``[notify]`` table (see plugins/notify.py)."""
        return dict(self.data.get("notify", {}))

    @property
    def as_of(self) -> dt.date:
        """The analysis date: ``sync.as_of`` when set (reproducible runs), else today."""
        fixed = self.data.get("sync", {}).get("as_of")
        return dt.date.fromisoformat(fixed) if fixed else dt.date.today()

    @property
    def quality(self) -> dict[str, Any]:
        """The ``[quality]`` table: plausibility bounds (see crm_bridge.plausibility)."""
        return dict(self.data.get("quality", {}))

    @property
    def min_read_share(self) -> float:
        return float(self.data.get("quality", {}).get("min_read_share", 0.5))

    @property
    def state_path(self) -> Path:
        raw = self.data.get("state", {}).get("path", ".crm-bridge/state.db")
        return (self.path.parent / raw).resolve()

    @property
    def language(self) -> str | None:
        """``[locale] language``: of free-text values written to the ERP (None: English)
        and of report and diagnose when no --lang is given."""
        value = self.data.get("locale", {}).get("language")
        return str(value) if value else None

    @property
    def languages(self) -> list[str] | None:
        """``[locale] languages``: those to provision labels in (None: every one the ERP has)."""
        value = self.data.get("locale", {}).get("languages")
        return [str(v) for v in value] if value else None

    @property
    def disabled(self) -> list[str]:
        return list(self.data.get("plugins", {}).get("disabled", []))

    def plugin_settings(self, name: str) -> dict[str, Any]:
        return dict(self.data.get("plugins", {}).get(name, {}))

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def warn_plaintext_secrets(self, keys: Iterable[str]) -> None:
        """Warn about each ``[erp]`` secret (the adapter's ``secret_keys``) written in
        the file itself instead of ``${NAME}`` or ``${file:PATH}``."""
        erp = self.data.get("erp", {})
        for key in keys:
            if isinstance(erp.get(key), str) and erp[key] and ("erp", key) not in self.references:
                said = _(
                    "config key erp.{key} is written in plain text in {path}: use "
                    "{reference} (an environment variable) or {file} (a file only its "
                    "owner may read)"
                ).format(
                    key=key,
                    path=self.path,
                    reference=f'{key} = "${{CRM_BRIDGE_ERP_{key.upper()}}}"',
                    file='"${file:PATH}"',
                )
                warnings.warn(
                    said,
                    CrmBridgeWarning,
                    stacklevel=2,
                )

    def ensure_state_folder(self) -> None:
        """Create the state store's folder, or raise a ConfigError naming ``[state] path``
        and why it cannot be used (a file in the way, no permission...)."""
        path = self.state_path
        hint = "set [state] path to a file in a folder crm-bridge's user may write"
        problem = None
        existing = next(p for p in path.parents if p.exists())
        if path.is_dir():
            problem = "is a folder, not a file"
        elif not existing.is_dir():
            problem = f"cannot be created: {existing} is a file, not a folder"
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problem = f"cannot be created: {exc.strerror or exc}"
        if problem is None and not (
            os.access(path.parent, os.W_OK | os.X_OK)
            and (not path.exists() or os.access(path, os.R_OK | os.W_OK))
        ):
            problem = "is not writable by this user"
        if problem:
            raise ConfigError(f"config key state.path: the state store {path} {problem}", hint)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``.

    A secret shorter than 6 characters is replaced where it stands alone, not
    inside words: a test password "a" must not shred every message.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 6:
            text = text.replace(secret, "***")
        elif secret:
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "***", text)
    return text


def _where(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _interpolate(
    value: Any,
    path: tuple[Any, ...],
    secrets: set[str],
    references: set[tuple[Any, ...]],
    resolve: bool = True,
) -> Any:
    if isinstance(value, dict):
        return {
            k: _interpolate(v, (*path, k), secrets, references, resolve) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, (*path, i), secrets, references, resolve) for i, v in enumerate(value)
        ]
    if isinstance(value, str) and "${" in value:
        references.add(path)
        if not resolve:
            return value

        def env(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    _(
                        "config key {key} refers to the environment variable {name}, "
                        "which is not set"
                    ).format(key=_where(path), name=name),
                    hint=_("export {name}=... before running crm-bridge").format(name=name),
                )
            secrets.add(os.environ[name])
            return os.environ[name]

        def from_file(match: re.Match[str]) -> str:
            secret_path = Path(match.group(1)).expanduser()
            try:
                mode = secret_path.stat().st_mode
            except OSError:
                raise ConfigError(
                    _(
                        "config key {key} refers to the secret file {path}, which cannot be read"
                    ).format(key=_where(path), path=secret_path),
                    hint=_("check the path and that crm-bridge's user may read it"),
                ) from None
            if mode & 0o077:
                raise ConfigError(
                    f"secret file {secret_path} (config key {_where(path)}) is readable by "
                    f"other users (mode {mode & 0o777:o})",
                    hint=f"chmod 600 {secret_path}",
                )
            secret = secret_path.read_text("utf-8").strip()
            secrets.add(secret)
            return secret

        return ENV_REF.sub(env, FILE_REF.sub(from_file, value))
    return value


def with_defaults(settings: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` with the ``default`` of each property the schema declares and
    the settings leave out, nested objects included (JSON Schema itself never
    fills defaults in)."""
    out = dict(settings)
    for key, sub in ((schema or {}).get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if isinstance(out.get(key), Mapping) and sub.get("properties"):
            out[key] = with_defaults(out[key], sub)
    return out


def validate(
    data: Mapping[str, Any],
    schema: Mapping[str, Any],
    prefix: tuple[str, ...] = (),
    what: str = "config key",
    hint: str = "fix crm-bridge.toml (crm-bridge init writes a valid starter file)",
) -> None:
    """Raise ConfigError naming the key path of the first schema violation."""
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = _where((*prefix, *error.absolute_path))
        raise ConfigError(f"{what} {where}: {error.message}", hint=hint)


def load(path: Path | str | None = None, secrets: bool = True) -> Config:
    """Read, interpolate and validate the config file.

    ``secrets=False`` leaves every ``${NAME}`` and ``${file:PATH}`` as written:
    for the commands that read only local files (``runs``, ``plugins``), which
    must work without the ERP's secret in the environment.
    """
    resolve = secrets
    path = Path(path or os.environ.get("CRM_BRIDGE_CONFIG") or DEFAULT_PATH)
    if not path.exists():
        raise ConfigError(
            _("config file {path} not found").format(path=path),
            hint=_("create one with: crm-bridge init (or pass --config PATH)"),
        )
    if path.is_dir():
        raise ConfigError(
            _("config file {path} is a folder, not a file").format(path=path),
            hint=_("pass --config {file}, or the path of your config file").format(
                file=path / DEFAULT_PATH
            ),
        )
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            _("{path} is not valid TOML: {error}").format(path=path, error=exc),
            hint=_("fix the syntax"),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            _("config file {path} cannot be read: {reason}").format(path=path, reason=reason),
            hint=_("check the path, that it is a UTF-8 text file and that you may read it"),
        ) from None
    found: set[str] = set()
    references: set[tuple[Any, ...]] = set()
    data = _interpolate(raw, (), found, references, resolve)
    validate(data, jsonschemas.load("config"))
    if resolve:
        _check_verify_tls(data["erp"], path.resolve().parent)
    return Config(path.resolve(), data, found, references)


def _check_verify_tls(erp: dict[str, Any], folder: Path) -> None:
    """``erp.verify_tls``: true, false, or an existing PEM file (made absolute; a
    relative path is relative to the config file)."""
    value = erp.get("verify_tls")
    if not isinstance(value, str):
        return  # true, false, or a type the schema already refused
    hint = (
        "verify_tls = true (the default: requests' CA bundle), false (no verification), "
        "or the path of a PEM file with the CA certificate(s) of the ERP's certificate"
    )
    if value.strip().lower() in ("true", "false", "yes", "no", "on", "off", "0", "1"):
        hint = f"write true or false without quotes; {hint}"
    bundle = Path(value).expanduser()
    bundle = bundle if bundle.is_absolute() else folder / bundle
    if not bundle.is_file():
        raise ConfigError(
            f"config key erp.verify_tls: {value!r} is neither true, false nor an existing "
            f"CA bundle file (no file {bundle})",
            hint=hint,
        )
    try:
        pem = bundle.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"config key erp.verify_tls: the CA bundle {bundle} cannot be read: {exc.strerror}",
            hint="check that crm-bridge's user may read it",
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(
            f"config key erp.verify_tls: {bundle} holds no PEM certificate",
            hint=hint,
        )
    erp["verify_tls"] = str(bundle)
