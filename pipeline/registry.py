"""The feed registry: ``seeds/feeds.toml``, one ``[[feeds]]`` table per feed.

The shipped list (``ESCMON_FEEDS_FILE``) is a read-only default. ``escmon feeds
add|remove|check --mark-verified`` edit a copy in the data folder
(``<ESCMON_DATA_DIR>/feeds.toml``, made from the shipped list on the first edit:
:func:`editable_registry`), and that copy, once it exists, is the list in force
(:func:`pipeline.config.active_feeds_file`).

Read with :mod:`tomllib`; written by :func:`dumps` (a small writer for the few
value types a feed has, since no TOML writer is installed). Every error names
the file and the entry, e.g. ``seeds/feeds.toml: feed #3 ("tass-en"): ...``.

Example entry::

    [[feeds]]
    name = "meduza-en"
    url = "https://meduza.io/rss/en/all"
    country = "RUS"            # ISO 3166-1 alpha-3, optional
    region = "eastern-europe"  # optional
    language = "en"            # hint for language detection, optional
    tags = ["independent"]
    fulltext = "auto"          # auto | always | never
    enabled = true
    verified = false           # true once someone has fetched it successfully
    note = "..."               # optional, free text
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import EscmonError

FULLTEXT_MODES = ("auto", "always", "never")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
COUNTRY_RE = re.compile(r"[A-Z]{3}")
LANGUAGE_RE = re.compile(r"[a-z]{2,3}")
HEADER = """\
# Feed registry for escmon. Manage it with `escmon feeds list|add|remove|check`
# or edit it by hand; `escmon feeds check` fetches a feed once and reports.
# Keys: name, url, country (ISO alpha-3), region, language (hint), tags,
# fulltext (auto|always|never), enabled, verified, note.
"""


class RegistryError(EscmonError, ValueError):
    """The registry file or one of its entries is invalid; the message says where."""


@dataclass(frozen=True)
class FeedSpec:
    """One registry entry."""

    name: str
    url: str
    country: str | None = None
    region: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    fulltext: str = "auto"
    enabled: bool = True
    verified: bool = False
    note: str | None = None

    def db_tags(self) -> list[str]:
        """Tags as stored in ``feeds.tags``: ``country:XXX``, ``region:...``, then free tags."""
        out = [f"country:{self.country}"] if self.country else []
        if self.region:
            out.append(f"region:{self.region}")
        return out + list(self.tags)

    def feed_row(self) -> dict[str, Any]:
        """The registry-owned columns of the ``feeds`` row."""
        return {
            "name": self.name,
            "kind": "rss",
            "url": self.url,
            "language": self.language,
            "tags": self.db_tags(),
            "enabled": self.enabled,
            "fulltext": self.fulltext,
        }


_FIELDS: dict[str, type] = {
    "name": str,
    "url": str,
    "country": str,
    "region": str,
    "language": str,
    "tags": list,
    "fulltext": str,
    "enabled": bool,
    "verified": bool,
    "note": str,
}


def validate(raw: dict[str, Any], where: str) -> FeedSpec:
    """A :class:`FeedSpec` from one parsed table; ``where`` prefixes every error."""
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise RegistryError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}"
        )
    for key in ("name", "url"):
        if key not in raw:
            raise RegistryError(f"{where}: missing required key {key!r}")
    for key, kind in _FIELDS.items():
        if key in raw and not isinstance(raw[key], kind):
            raise RegistryError(f"{where}: {key!r} must be a {kind.__name__}, got {raw[key]!r}")
    spec = FeedSpec(
        name=raw["name"],
        url=raw["url"].strip(),
        country=raw.get("country"),
        region=raw.get("region"),
        language=raw.get("language"),
        tags=tuple(raw.get("tags", ())),
        fulltext=raw.get("fulltext", "auto"),
        enabled=raw.get("enabled", True),
        verified=raw.get("verified", False),
        note=raw.get("note"),
    )
    _check_values(spec, where)
    return spec


def _check_values(spec: FeedSpec, where: str) -> None:
    if not NAME_RE.fullmatch(spec.name):
        raise RegistryError(
            f"{where}: name {spec.name!r} must be 1-100 lower-case letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    parts = urlsplit(spec.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"{where}: url {spec.url!r} must be an http:// or https:// URL")
    if spec.fulltext not in FULLTEXT_MODES:
        raise RegistryError(
            f"{where}: fulltext must be one of {', '.join(FULLTEXT_MODES)}, got {spec.fulltext!r}"
        )
    if spec.country is not None and not COUNTRY_RE.fullmatch(spec.country):
        raise RegistryError(
            f"{where}: country must be an ISO 3166 alpha-3 code such as 'BLR', got {spec.country!r}"
        )
    if spec.language is not None and not LANGUAGE_RE.fullmatch(spec.language):
        raise RegistryError(
            f"{where}: language must be an ISO 639 code such as 'en', got {spec.language!r}"
        )
    bad_tags = [tag for tag in spec.tags if not isinstance(tag, str) or not tag.strip()]
    if bad_tags:
        raise RegistryError(f"{where}: tags must be non-empty strings, got {bad_tags!r}")


def _where(path: Path, index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"{path}: feed #{index}" + (f" ({name!r})" if isinstance(name, str) else "")


def parse_registry(text: str, path: Path) -> list[FeedSpec]:
    """Feeds from TOML ``text``; ``path`` is only used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: invalid TOML: {exc}") from exc
    extra = sorted(set(data) - {"feeds"})
    if extra:
        raise RegistryError(
            f"{path}: unknown top-level key(s) {', '.join(extra)}; feeds go in [[feeds]] tables"
        )
    tables = data.get("feeds", [])
    if not isinstance(tables, list):
        raise RegistryError(f"{path}: 'feeds' must be an array of tables ([[feeds]])")
    specs: list[FeedSpec] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(tables, start=1):
        where = _where(path, index, raw)
        if not isinstance(raw, dict):
            raise RegistryError(f"{where}: must be a table")
        spec = validate(raw, where)
        if spec.name in seen:
            raise RegistryError(f"{where}: duplicate name, already used by feed #{seen[spec.name]}")
        seen[spec.name] = index
        specs.append(spec)
    return specs


SETTING = "ESCMON_FEEDS_FILE"


def load_registry(path: Path, *, missing_ok: bool = True) -> list[FeedSpec]:
    """All feeds of the registry file.

    A missing file is an empty registry when ``missing_ok`` (``feeds add`` creates it);
    otherwise, as for a folder or an unreadable file, a :class:`RegistryError` names
    ``ESCMON_FEEDS_FILE`` and the fix.
    """
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise RegistryError(
            f"{SETTING} names {_shown(path)}, which does not exist; point {SETTING} at the "
            "feed registry (default seeds/feeds.toml) or create it with "
            "`escmon feeds add NAME URL`"
        )
    if path.is_dir():
        raise RegistryError(
            f"{SETTING} names {_shown(path)}, which is a folder; point {SETTING} at the "
            "registry file inside it, e.g. seeds/feeds.toml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise RegistryError(
            f"{SETTING} names {_shown(path)}, which cannot be read ({exc.strerror or exc}); "
            "make it readable for this user"
        ) from exc
    return parse_registry(text, path)


def _shown(path: Path) -> str:
    """``path``, with the folder it is relative to (settings are read from the working one)."""
    return str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"


# --- writing ------------------------------------------------------------------

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_str(value: str) -> str:
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the registry")


def dumps(specs: Iterable[FeedSpec]) -> str:
    """The registry file text for ``specs`` (defaults and empty values omitted)."""
    blocks = [HEADER]
    for spec in specs:
        lines = ["[[feeds]]"]
        for key in _FIELDS:
            value = getattr(spec, key)
            if value is None or (key == "tags" and not value):
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def save_registry(path: Path, specs: Iterable[FeedSpec]) -> None:
    """Write the registry atomically (a temporary file, then a rename)."""
    path = Path(path)
    text = dumps(specs)
    parse_registry(text, path)  # never write a file we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- the operations behind `escmon feeds ...` -----------------------------------


EDITED_FILE_NAME = "feeds.toml"  # in the data folder


def edited_feeds_file(data_dir: Path) -> Path:
    """Where ``escmon feeds add|remove`` keep the edited list: ``<data_dir>/feeds.toml``."""
    return Path(data_dir) / EDITED_FILE_NAME


def active_feeds_file(feeds_file: Path, data_dir: Path) -> Path:
    """The feed list in force: the edited one in ``data_dir`` if there is one, else the
    shipped ``feeds_file``."""
    edited = edited_feeds_file(data_dir)
    return edited if edited.exists() else Path(feeds_file)


def editable_registry(shipped: Path, data_dir: Path, *, missing_ok: bool = True) -> Path:
    """The feed list to edit: ``<data_dir>/feeds.toml``, a copy of the ``shipped`` one made
    on the first edit, so the shipped file (in the source tree) is never written.

    The shipped list is checked before it is copied; a missing one is an empty list when
    ``missing_ok`` (``feeds add`` starts one), else an error naming ``ESCMON_FEEDS_FILE``.
    """
    edited = edited_feeds_file(data_dir)
    if edited.exists():
        return edited
    load_registry(shipped, missing_ok=missing_ok)  # a folder or broken file: its own error
    if Path(shipped).is_file():
        edited.parent.mkdir(parents=True, exist_ok=True)
        partial = edited.with_name(f".{edited.name}.{os.getpid()}.tmp")
        shutil.copyfile(shipped, partial)
        os.replace(partial, edited)
    return edited


def list_feeds(path: Path, *, missing_ok: bool = True) -> list[FeedSpec]:
    return load_registry(path, missing_ok=missing_ok)


def add_feed(path: Path, spec: FeedSpec) -> FeedSpec:
    """Append ``spec``; refuses a name or URL that is already registered."""
    specs = load_registry(path)
    spec = validate(
        {k: v for k, v in _as_raw(spec).items() if v is not None},
        f"{path}: new feed ({spec.name!r})",
    )
    for other in specs:
        if other.name == spec.name:
            raise RegistryError(f"{path}: a feed named {spec.name!r} already exists")
        if other.url == spec.url:
            raise RegistryError(f"{path}: {spec.url} is already registered as {other.name!r}")
    save_registry(path, [*specs, spec])
    return spec


def remove_feed(path: Path, name: str) -> FeedSpec:
    """Remove the feed called ``name`` and return it; its stored articles stay."""
    specs = load_registry(path, missing_ok=False)
    kept = [spec for spec in specs if spec.name != name]
    if len(kept) == len(specs):
        known = ", ".join(spec.name for spec in specs) or "none"
        raise RegistryError(f"{path}: no feed named {name!r} (registered: {known})")
    save_registry(path, kept)
    return next(spec for spec in specs if spec.name == name)


def update_feed(path: Path, name: str, **changes: Any) -> FeedSpec:
    """Change fields of one feed (e.g. ``verified=True`` after a good check)."""
    specs = load_registry(path, missing_ok=False)
    for index, spec in enumerate(specs):
        if spec.name == name:
            changed = replace(spec, **changes)
            specs[index] = validate(
                {k: v for k, v in _as_raw(changed).items() if v is not None},
                _where(path, index + 1, {"name": name}),
            )
            save_registry(path, specs)
            return specs[index]
    raise RegistryError(f"{path}: no feed named {name!r}")


def _as_raw(spec: FeedSpec) -> dict[str, Any]:
    raw = {key: getattr(spec, key) for key in _FIELDS}
    raw["tags"] = list(spec.tags)
    return raw


__all__ = [
    "FULLTEXT_MODES",
    "FeedSpec",
    "RegistryError",
    "active_feeds_file",
    "add_feed",
    "dumps",
    "editable_registry",
    "edited_feeds_file",
    "list_feeds",
    "load_registry",
    "parse_registry",
    "remove_feed",
    "save_registry",
    "update_feed",
    "validate",
]
