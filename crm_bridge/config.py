"""The configuration file: ``crm-bridge.toml``, validated before anything runs.

Secrets never live in the file: ``${NAME}`` is replaced by the environment
variable NAME and ``${file:PATH}`` by the content of a file that only its owner
may read (a group- or world-readable one is refused).  Every value that came
from either is remembered as a secret, so that it is redacted wherever
crm-bridge prints anything.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from crm_bridge import jsonschemas
from crm_bridge.errors import ConfigError

DEFAULT_PATH = Path("crm-bridge.toml")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FILE_REF = re.compile(r"\$\{file:([^}]+)\}")


@dataclass
class Config:
    path: Path
    data: dict[str, Any]
    secrets: set[str] = field(default_factory=set)

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
    def disabled(self) -> list[str]:
        return list(self.data.get("plugins", {}).get("disabled", []))

    def plugin_settings(self, name: str) -> dict[str, Any]:
        return dict(self.data.get("plugins", {}).get(name, {}))

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


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


def _interpolate(value: Any, path: tuple[Any, ...], secrets: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), secrets) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def env(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"config key {_where(path)} refers to the environment variable {name}, "
                    "which is not set",
                    hint=f"export {name}=... before running crm-bridge",
                )
            secrets.add(os.environ[name])
            return os.environ[name]

        def from_file(match: re.Match[str]) -> str:
            secret_path = Path(match.group(1)).expanduser()
            try:
                mode = secret_path.stat().st_mode
            except OSError:
                raise ConfigError(
                    f"config key {_where(path)} refers to the secret file {secret_path}, "
                    "which cannot be read",
                    hint="check the path and that crm-bridge's user may read it",
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


def load(path: Path | str | None = None) -> Config:
    """Read, interpolate and validate the config file."""
    path = Path(path or os.environ.get("CRM_BRIDGE_CONFIG") or DEFAULT_PATH)
    if not path.exists():
        raise ConfigError(
            f"config file {path} not found",
            hint="create one with: crm-bridge init (or pass --config PATH)",
        )
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the syntax") from None
    secrets: set[str] = set()
    data = _interpolate(raw, (), secrets)
    validate(data, jsonschemas.load("config"))
    return Config(path.resolve(), data, secrets)
