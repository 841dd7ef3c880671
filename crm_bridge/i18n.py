"""Languages: message catalogs (gettext) and locale formatting (Babel).

The catalogs are ``crm_bridge/locale/<lang>/LC_MESSAGES/crm_bridge.po``, one per
language in :data:`LANGUAGES`; the message ids are the English texts, so English
needs no lookup and reads exactly as the source.  A ``.po`` is compiled in memory
the first time its language is used (no ``.mo`` to build or ship: a clean clone
and ``make install`` are enough).

The language in effect is a context variable: :func:`using` sets it for a block
(a report, a diagnosis, a sync run's computed texts) and :func:`_`, :func:`ngettext`
and the formatting functions read it.  ``docs/glossary.md`` fixes the domain terms
the catalogs use.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, numbers
from babel import dates as babel_dates
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DOMAIN = "crm_bridge"
LANGUAGES: tuple[str, ...] = ("en", "ru", "lv", "zh_CN")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")

_current: contextvars.ContextVar[str] = contextvars.ContextVar("language", default=DEFAULT)


def N_(message: str) -> str:  # the gettext convention: mark now, translate later
    """Mark ``message`` for the catalogs without translating it here."""
    return message


def normalize(language: str | None) -> str | None:
    """The catalog language a locale name means, or None if there is none for it.

    ``ru_RU.UTF-8`` -> ``ru``, ``zh_Hans_CN``/``zh-CN``/``zh`` -> ``zh_CN``,
    ``C``/``POSIX`` -> ``en``.
    """
    if not language:
        return None
    name = language.split(".")[0].split("@")[0].replace("-", "_")
    if name in ("C", "POSIX"):
        return DEFAULT
    parts = name.split("_")
    base = parts[0].lower()
    if base == "zh":
        rest = {p.upper() for p in parts[1:]}
        return None if rest & {"TW", "HK", "MO", "HANT"} else "zh_CN"
    return base if base in LANGUAGES else None


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language of the environment's locale (LANGUAGE, LC_ALL, LC_MESSAGES, LANG)."""
    env = os.environ if environ is None else environ
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(key)
        if value:
            for item in value.split(":"):
                found = normalize(item)
                if found:
                    return found
            return None
    return None


def resolve(option: str | None, configured: str | None) -> str:
    """The language of an output: ``--lang``, else ``[locale] language``, else the
    environment's locale, else English."""
    if option:
        found = normalize(option)
        if found is None:
            from crm_bridge.errors import ConfigError

            raise ConfigError(
                f"--lang {option}: there is no catalog for this language",
                hint=f"use one of {', '.join(LANGUAGES)}",
            )
        return found
    return configured or from_environment() or DEFAULT


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    with catalog_path(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


@functools.cache
def translations(language: str) -> Translations:
    """The compiled catalog of ``language`` (compiled from its ``.po`` on first use)."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(language))
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def current() -> str:
    """The language in effect."""
    return _current.get()


@contextlib.contextmanager
def using(language: str | None) -> Iterator[str]:
    """Make ``language`` (a catalog language; None: English) the one in effect."""
    lang = normalize(language) or DEFAULT
    token = _current.set(lang)
    try:
        yield lang
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """``message`` in the language in effect."""
    lang = _current.get()
    if lang == DEFAULT or not message:
        return message
    return translations(lang).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, by the plural rules of the language."""
    lang = _current.get()
    if lang == DEFAULT:
        return singular if n == 1 else plural
    return translations(lang).ngettext(singular, plural, n)


def translate_all(messages: Iterable[str]) -> dict[str, str]:
    """{message: its translation} in the language in effect."""
    return {m: _(m) for m in messages}


# -- formatting ------------------------------------------------------------------
def _babel_locale() -> Locale:
    return Locale.parse(_current.get())


def number(value: float | int | Decimal, digits: int = 0) -> str:
    """A number with the locale's grouping and decimal sign, ``digits`` decimals."""
    if _current.get() == DEFAULT:  # exactly as the English outputs always read
        return f"{value:,.{digits}f}"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return numbers.format_decimal(value, format=pattern, locale=_babel_locale())


def percent(share: float, digits: int = 0) -> str:
    """A share (0.5) as a percentage (50%) in the locale's way."""
    if _current.get() == DEFAULT:
        return f"{share:.{digits}%}"
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return numbers.format_percent(share, format=pattern, locale=_babel_locale())


def currency(value: float | Decimal, code: str) -> str:
    """An amount of money in the currency ``code`` (EUR, RUB, CNY ...)."""
    return numbers.format_currency(value, code, locale=_babel_locale())


def date(value: dt.date) -> str:
    """A date in the locale's medium form (English: the ISO date, as the outputs always had)."""
    if _current.get() == DEFAULT:
        return value.isoformat()
    return babel_dates.format_date(value, format="medium", locale=_babel_locale())


def placeholders(text: str) -> list[str]:
    """The ``{name}`` fields of a message, sorted: a translation must keep the same."""
    return sorted(PLACEHOLDER.findall(text.replace("{{", "").replace("}}", "")))


def field_texts(field: Any) -> Iterator[str]:
    """The messages of one field declaration: its label, help text and the choice labels
    that are words (a label that is its own key, like ``AX``, is a code: not translated)."""
    yield field.label
    if field.help:
        yield field.help
    for key, label in field.choices:
        if label != key:
            yield label


def frame_format(template: str, **columns: Any) -> Any:
    """A Polars expression filling the ``{name}`` fields of a (translated) template
    with expressions, in the order the template puts them (a translation may reorder)."""
    import polars as pl

    names = PLACEHOLDER.findall(template)
    text = PLACEHOLDER.sub("{}", template)
    return pl.format(text, *(columns[n] for n in names)) if names else pl.lit(template)


# -- the catalogs' contents ----------------------------------------------------------
KEYWORDS: dict[str, Any] = {"_": None, "N_": None, "ngettext": (1, 2)}


def source_messages() -> dict[str | tuple[str, str], str]:
    """{message (or singular, plural): where it is} of every ``_``/``N_``/``ngettext``
    call with a literal in crm-bridge's code (Babel's extractor)."""
    from babel.messages.extract import extract_from_dir

    import crm_bridge.adapters.tryton
    import crm_bridge.cli
    import crm_bridge.plugins

    found: dict[str | tuple[str, str], str] = {}
    folders = [Path(__file__).parent, *map(Path, crm_bridge.plugins.__path__)]
    folders += map(Path, [*crm_bridge.cli.__path__, *crm_bridge.adapters.tryton.__path__])
    for folder in folders:
        for filename, line, message, _comments, _context in extract_from_dir(
            str(folder), [("**.py", "python")], KEYWORDS
        ):
            key = message if isinstance(message, str) else (message[0], message[1])
            found.setdefault(key, f"{folder.name}/{filename}:{line}")
    return found


def field_messages(fields: Iterable[Any]) -> dict[str, str]:
    """{message: where it is} of field declarations (labels, help texts, choice labels)."""
    return {text: f"field {f.name}" for f in fields for text in field_texts(f) if text}


def builtin_messages() -> dict[str | tuple[str, str], str]:
    """Every message the catalogs must hold: the code's and the built-in plugins' fields."""
    from crm_bridge.plugin_manager import load_plugins

    fields = load_plugins([]).fields().values()
    builtin = [f for f in fields if f.owner in ("segmentation", "loyalty", "kpis")]
    found: dict[str | tuple[str, str], str] = {}
    found.update(field_messages(builtin))
    found.update(source_messages())
    return found


def problems(catalog: Catalog, messages: Iterable[str | tuple[str, str]]) -> list[str]:
    """What is wrong with ``catalog`` against the ``messages`` it must translate: a message
    missing, untranslated or fuzzy, a plural lacking a form, a ``{placeholder}`` differing."""
    out = []
    where = f"crm_bridge/locale/{catalog.locale}/LC_MESSAGES/{DOMAIN}.po"
    for message in messages:
        entry = catalog.get(message)
        if entry is None:
            out.append(f"{where}: no msgid {message!r}")
            continue
        raw = entry.string
        strings: list[str] = list(raw) if isinstance(raw, tuple | list) else [raw or ""]
        ids = message if isinstance(message, tuple) else (message,)
        if entry.fuzzy or not all(strings):
            out.append(f"{where}: msgid {message!r} is untranslated or fuzzy")
            continue
        if isinstance(message, tuple) and len(strings) != catalog.num_plurals:
            out.append(
                f"{where}: msgid {message!r} has {len(strings)} plural forms, not "
                f"{catalog.num_plurals}"
            )
        wanted = placeholders(ids[-1])
        for text in strings:
            if placeholders(text) != wanted:
                out.append(
                    f"{where}: msgid {message!r}: the translation {text!r} has the "
                    f"placeholders {placeholders(text)}, the message {wanted}"
                )
    return out


def update_catalogs() -> None:
    """Bring every ``.po`` up to the messages of the code: new ones added untranslated
    (the catalog test then fails until they are translated), gone ones dropped."""
    from babel.messages.pofile import write_po

    template = Catalog(domain=DOMAIN, project="crm-bridge")
    for message, where in builtin_messages().items():
        template.add(message, locations=[(where.rsplit(":", 1)[0], 0)] if ":" in where else [])
    for language in LANGUAGES:
        path = catalog_path(language)
        if path.exists():
            catalog = read_catalog(language)
        else:
            catalog = Catalog(locale=language, domain=DOMAIN, project="crm-bridge")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        catalog.fuzzy = False
        day = dt.datetime.combine(dt.date.today(), dt.time(), dt.UTC)
        catalog.revision_date = catalog.creation_date = day
        catalog.last_translator = catalog.language_team = "crm-bridge <docs/glossary.md>"
        catalog.copyright_holder = "the crm-bridge authors"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, omit_header=False, sort_output=True)


if __name__ == "__main__":  # make catalogs
    update_catalogs()
