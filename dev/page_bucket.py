#!/usr/bin/env python3
"""Which split a stored web page belongs to: ``test``, ``train`` or ``excluded``.

The rule is fixed before any page is read (see ``dev/README.md``, evaluation protocol):
a page whose URL's SHA-1 starts with 0, 1 or 2 belongs to the frozen test set, every
other page may be used for training, and a page listed in
``shared/corpora/EXCLUDED_PAGES.txt`` is never used at all.

    python dev/page_bucket.py URL [URL ...]        # prints "<bucket>\t<url>" per URL
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

TEST_PREFIXES = ("0", "1", "2")
EXCLUDED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "EXCLUDED_PAGES.txt"


def _norm(url: str) -> str:
    url = url.strip()
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
    if url.startswith("www."):
        url = url[4:]
    return url.rstrip("/")


def excluded_pages(path: Path = EXCLUDED) -> set[str]:
    if not path.is_file():
        raise SystemExit(f"{path} not found: the exclusion list is needed to use any page")
    lines = path.read_text(encoding="utf-8").splitlines()
    return {_norm(line) for line in lines if line.strip() and not line.startswith("#")}


def bucket(url: str, excluded: set[str]) -> str:
    if _norm(url) in excluded:
        return "excluded"
    digest = hashlib.sha1(url.strip().encode("utf-8")).hexdigest()
    return "test" if digest.startswith(TEST_PREFIXES) else "train"


if __name__ == "__main__":
    excl = excluded_pages()
    for arg in sys.argv[1:]:
        print(f"{bucket(arg, excl)}\t{arg.strip()}")
