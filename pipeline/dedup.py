"""Duplicate detection: exact (URL, GUID), content hash, and near-duplicate story ids."""

from __future__ import annotations

import hashlib
import re

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize_for_hash(text: str) -> str:
    """Lower-case words joined by single spaces: punctuation and spacing edits vanish."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def content_hash(text: str) -> str:
    """SHA-256 of the normalized text: equal for copies that differ only in markup/spacing."""
    return hashlib.sha256(normalize_for_hash(text).encode("utf-8")).hexdigest()
