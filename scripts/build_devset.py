"""Turn a text-keyed labelling file into dev-set references (``dev/devset_refs.jsonl``).

Labelling is done on sentence *text*; the stored dev set holds only references (feed,
entry id, field, sentence index, SHA-1 prefix). This script maps each labelled text to
its place in the feeds using the current :mod:`pipeline.text`, writes the references,
reports every text it cannot locate, and checks the result with
:func:`pipeline.devset.load_devset`.

Input: JSON lines with ``feed``, ``text``, ``label``, ``reason`` and optionally ``field``
(``title``/``summary``) and ``entry_index`` (position of the entry in the feed), which
are used first to disambiguate repeated texts.

Example::

    .venv/bin/python scripts/build_devset.py WORK_FILE.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from pipeline.devset import (
    DEFAULT_REFS,
    FEEDS_SUBDIR,
    LABELS,
    entry_key,
    feed_sentences,
    load_devset,
    sentence_sha1,
)
from pipeline.text import normalize_whitespace

REPO = Path(__file__).resolve().parents[1]

Place = tuple[str, str, int]  # entry key, field, sentence index


def _entry_keys(data: bytes) -> list[str | None]:
    import feedparser

    return [entry_key(entry) for entry in feedparser.parse(data).entries]


def _locate(item: dict, keys: list[str | None], table: dict) -> Place | None:
    """Where ``item['text']`` sits: its own entry and field first, then anywhere in the feed."""
    text = item["text"]
    index = item.get("entry_index")
    own_key = keys[index] if isinstance(index, int) and 0 <= index < len(keys) else None
    fields = [item["field"]] if item.get("field") else ["title", "summary"]
    preferred = [(own_key, f) for f in fields if own_key is not None]
    for norm in (str, normalize_whitespace):  # exact first, then whitespace-insensitive
        wanted = norm(text)
        for key, field in [*preferred, *table]:
            for i, sentence in enumerate(table.get((key, field), [])):
                if norm(sentence) == wanted:
                    return key, field, i
    return None


def build(work_path: Path, shared_dir: Path, out_path: Path) -> tuple[list[dict], list[dict]]:
    """Resolve every labelled text; return (references, unresolved items)."""
    items = [json.loads(line) for line in work_path.read_text("utf-8").splitlines() if line.strip()]
    feeds_dir = shared_dir / FEEDS_SUBDIR
    cache: dict[str, tuple[list[str | None], dict]] = {}
    refs: list[dict] = []
    missing: list[dict] = []
    seen: set[tuple[str, str, str, int]] = set()
    for item in items:
        if item["label"] not in LABELS:
            raise SystemExit(f"bad label {item['label']!r} for {item['text'][:60]!r}")
        feed = item["feed"]
        if feed not in cache:
            data = (feeds_dir / feed).read_bytes()
            cache[feed] = (_entry_keys(data), feed_sentences(data))
        keys, table = cache[feed]
        place = _locate(item, keys, table)
        if place is None:
            missing.append(item)
            continue
        key, field, index = place
        if (feed, key, field, index) in seen:
            print(f"duplicate, skipped: {feed} {item['text'][:70]!r}", file=sys.stderr)
            continue
        seen.add((feed, key, field, index))
        text = table[(key, field)][index]
        refs.append(
            {
                "feed": feed,
                "entry_id": key,
                "field": field,
                "sentence": index,
                "sha1": sentence_sha1(text),
                "label": item["label"],
                "reason": item.get("reason", ""),
            }
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as fh:
        for ref in refs:
            fh.write(json.dumps(ref, ensure_ascii=False) + "\n")
    return refs, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="text-keyed labels (JSON lines)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=DEFAULT_REFS)
    args = parser.parse_args(argv)
    refs, missing = build(args.work, args.shared, args.out)
    counts = Counter(ref["label"] for ref in refs)
    print(f"wrote {len(refs)} references to {args.out}: {dict(sorted(counts.items()))}")
    loaded = load_devset(args.shared, args.out)
    print(f"verified: {len(loaded)} references resolve")
    for item in missing:
        print(f"NOT FOUND in {item['feed']}: {item['text']!r}", file=sys.stderr)
    if missing:
        print(f"{len(missing)} labelled text(s) could not be located", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
