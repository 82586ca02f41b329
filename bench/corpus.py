"""Benchmark corpus: N article-sized texts built from the real feeds and the seed article.

The 30 real feeds in ``../shared/corpora/feeds/real`` hold about 1,150 entries and 2,600
sentences; the seed adds 50 more. :func:`generate` turns them into ``n`` distinct articles:
each starts from one real entry (title and text, in its feed's language) and is padded with
sentences drawn from the pool of its language (English articles also draw from the seed)
to a length between :data:`MIN_SENTENCES` and :data:`MAX_SENTENCES`, the order shuffled,
with a dateline and a reference line that make every text, URL and GUID unique, so
neither the content hash nor near-duplicate grouping collapses them.

With ``syndicated=0.3``, 30% of the articles are syndicated copies of an earlier article:
the same story re-published by another desk with a different dateline, agency tag and
sign-off, one sentence possibly dropped. They are distinct rows (different hash) that share
the original's ``story`` key, which :func:`article_rows` turns into a shared ``story_id``.

Everything is deterministic for a given ``seed``. Only the benchmark reads ``../shared``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FEEDS_DIR = SHARED / "corpora" / "feeds" / "real"
SEEDS_DIR = SHARED / "seeds"
DAY = dt.date(2026, 3, 2)  # the benchmark's news day
MIN_SENTENCES, MAX_SENTENCES = 5, 25
OWN_SENTENCES = 2  # sentences taken from the entry itself; the rest come from the pool
BIG_POOL = 1000  # sentences a language needs for its entries to lead more than once

# Feeds whose file declares no (or an empty) language; read from SOURCES.md.
_LANGUAGE_FALLBACK = {
    "dw": "en",
    "economist-asia": "en",
    "oren-ru": "ru",
    "suspilne": "uk",
    "washingtonpost-world": "en",
    "yandex-news-moscow": "ru",
    "uol-noticias": "pt",
}
_CITIES = (
    "KYIV",
    "MINSK",
    "MOSCOW",
    "WARSAW",
    "VILNIUS",
    "BRUSSELS",
    "GENEVA",
    "BERLIN",
    "RIGA",
    "TALLINN",
    "ISTANBUL",
    "BEIJING",
    "WASHINGTON",
    "LONDON",
    "PARIS",
)
_AGENCIES = ("Reuters", "AFP", "AP", "dpa", "PAP", "BNS", "Interfax", "ANSA", "EFE", "UNIAN")
_DATELINE_TAG = re.compile(r"\(\w+\) - ")


@dataclass(frozen=True)
class Entry:
    """One real feed entry as plain text."""

    feed: str  # the feed file's stem
    language: str
    title: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class BenchArticle:
    feed: str
    guid: str
    url: str
    title: str
    text: str
    language: str
    published_at: dt.datetime
    story: int  # equal for an original and its syndicated copies


def feed_paths(feeds_dir: Path = FEEDS_DIR) -> list[Path]:
    """The real feed files, sorted by name."""
    paths = sorted(Path(feeds_dir).glob("*.xml"))
    if not paths:
        raise FileNotFoundError(f"{feeds_dir}: no *.xml feeds (the bench needs ../shared)")
    return paths


@lru_cache(maxsize=4)
def load_entries(feeds_dir: Path = FEEDS_DIR, seeds_dir: Path = SEEDS_DIR) -> tuple[Entry, ...]:
    """Every real feed entry with text, plus the seed article, as :class:`Entry` objects."""
    import feedparser

    from pipeline.text import html_to_text, split_sentences

    entries: list[Entry] = []
    for path in feed_paths(feeds_dir):
        parsed = feedparser.parse(path.read_bytes())
        language = _language(path.stem, parsed.feed.get("language"))
        for item in parsed.entries:
            body = item["content"][0].get("value", "") if item.get("content") else ""
            body = body or item.get("summary", "") or item.get("full-text", "")
            sentences = tuple(s.text for s in split_sentences(html_to_text(body)))
            title = html_to_text(item.get("title", "")).replace("\n", " ")
            if title or sentences:
                entries.append(Entry(path.stem, language, title, sentences))
    for path in sorted(Path(seeds_dir).glob("*.txt")):
        sentences = tuple(s.text for s in split_sentences(path.read_text(encoding="utf-8")))
        entries.append(Entry("seed", "en", sentences[0], sentences[1:]))
    return tuple(entries)


def _language(stem: str, declared: str | None) -> str:
    code = (declared or "").strip().lower().replace("_", "-")
    return code or _LANGUAGE_FALLBACK.get(stem, "en")


def generate(
    n: int, *, syndicated: float = 0.0, seed: int = 0, day: dt.date = DAY
) -> list[BenchArticle]:
    """``n`` distinct articles; a ``syndicated`` share of them are near-duplicate copies."""
    if n < 0 or not 0.0 <= syndicated < 1.0:
        raise ValueError("need n >= 0 and 0 <= syndicated < 1")
    entries = load_entries()
    pools = _pools(entries)
    leads = _leads(entries, pools)
    rng = random.Random(seed)
    copies = round(n * syndicated)
    originals = [
        _original(i, entry, pools[_family(entry.language)], rng, day)
        for i, entry in zip(range(n - copies), leads, strict=False)
    ]
    out = list(originals)
    for j in range(copies if originals else 0):
        out.append(_syndicate(n - copies + j, originals[rng.randrange(len(originals))], rng))
    rng.shuffle(out)  # copies arrive interleaved, as they would from many feeds
    return out


# The mixed-language corpus: half English, an eighth each of the region's languages.
MIXED_SHARES = {"en": 0.5, "ru": 0.125, "uk": 0.125, "be": 0.125, "pl": 0.125}
LANGUAGE_SEEDS = REPO / "seeds" / "languages"


@lru_cache(maxsize=1)
def language_pools(seeds_dir: Path = LANGUAGE_SEEDS) -> dict[str, tuple[str, ...]]:
    """Sentences per language of the region, from the labelled files in ``seeds/languages``
    (real news, paraphrased), for the mixed-language corpus."""
    import json

    pools: dict[str, list[str]] = defaultdict(list)
    for path in sorted(Path(seeds_dir).glob("*.labels.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                pools[row["language"]].append(row["text"])
    return {language: tuple(texts) for language, texts in pools.items()}


def generate_mixed(n: int, *, seed: int = 0, day: dt.date = DAY) -> list[BenchArticle]:
    """``n`` articles in the shares of :data:`MIXED_SHARES`: the English half as
    :func:`generate` makes them, the rest built from each language's sentence pool."""
    counts = {lang: round(n * share) for lang, share in MIXED_SHARES.items()}
    counts["en"] = n - sum(c for lang, c in counts.items() if lang != "en")
    out = generate(counts["en"], seed=seed, day=day)
    pools = language_pools()
    rng = random.Random(seed + 1)
    i = counts["en"]
    for language, count in counts.items():
        if language == "en":
            continue
        pool = list(pools[language])
        for _ in range(count):
            entry = Entry(f"mixed-{language}", language, "", tuple(rng.sample(pool, 2)))
            out.append(_original(i, entry, pool, rng, day))
            i += 1
    rng.shuffle(out)
    return out


def _leads(entries: tuple[Entry, ...], pools: dict[str, list[str]]) -> Iterator[Entry]:
    """Every feed entry once, then only entries whose language pool is large, round robin.

    An entry that leads several articles must share few of their sentences; a small pool
    (German titles only, 15 Portuguese sentences) cannot pad them apart, so its entries
    lead once: the language mix of the first ~1,150 articles is the feeds' own.
    """
    feed_entries = [e for e in entries if e.feed != "seed"]
    yield from feed_entries
    big = [e for e in feed_entries if len(pools[_family(e.language)]) >= BIG_POOL]
    yield from itertools.cycle(big)


def _family(language: str) -> str:
    return language.split("-")[0]


def _pools(entries: tuple[Entry, ...]) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        pools[_family(entry.language)].extend(entry.sentences)
    return pools


def _original(
    i: int, entry: Entry, pool: list[str], rng: random.Random, day: dt.date
) -> BenchArticle:
    own = list(entry.sentences[:OWN_SENTENCES]) or [entry.title]
    # Distinct padding, at most a quarter of a small pool, so two articles overlap little.
    padding = min(rng.randint(MIN_SENTENCES, MAX_SENTENCES) - len(own), len(pool) // 4)
    body = own + (rng.sample(pool, padding) if padding > 0 else [])
    rest = body[1:]
    rng.shuffle(rest)  # the entry's own first sentence stays the lead
    lead = f"{rng.choice(_CITIES)}, {day:%B} {day.day} ({rng.choice(_AGENCIES)}) - "
    text = "\n\n".join([lead + body[0], *rest, f"(ref {i:06d})"])
    minute = rng.randrange(24 * 60)
    published = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), dt.UTC)
    return BenchArticle(
        feed=entry.feed,
        guid=f"bench:{entry.feed}:{i}",
        url=f"https://bench.invalid/{entry.feed}/{i}",
        title=entry.title or body[0][:80],
        text=text,
        language=entry.language,
        published_at=published,
        story=i,
    )


def _syndicate(i: int, source: BenchArticle, rng: random.Random) -> BenchArticle:
    """A copy of ``source`` by another desk: new agency tag and sign-off, maybe a cut."""
    paragraphs = source.text.split("\n\n")
    lead, body = paragraphs[0], paragraphs[1:-1]
    lead = _DATELINE_TAG.sub(f"({rng.choice(_AGENCIES)}) \u2013 ", lead, count=1)
    if len(body) > 3 and rng.random() < 0.5:
        body.pop(rng.randrange(len(body)))
    text = "\n\n".join([lead, *body, f"Distributed by desk {rng.randrange(500)} (ref {i:06d})."])
    feed = f"{source.feed}-syndicated"
    return BenchArticle(
        feed=feed,
        guid=f"bench:{feed}:{i}",
        url=f"https://bench.invalid/{feed}/{i}",
        title=source.title,
        text=text,
        language=source.language,
        published_at=source.published_at + dt.timedelta(minutes=rng.randrange(1, 180)),
        story=source.story,
    )


def feed_rows(articles: list[BenchArticle]) -> list[dict[str, Any]]:
    """One ``feeds`` row per distinct feed of ``articles``."""
    names = sorted({a.feed for a in articles})
    return [
        {
            "name": f"bench-{name}",
            "kind": "rss",
            "url": f"https://bench.invalid/{name}.xml",
            "language": None,
            "tags": ["bench"],
            "enabled": True,
            "fulltext": "never",
        }
        for name in names
    ]


def article_rows(articles: list[BenchArticle], feed_ids: dict[str, int]) -> list[dict[str, Any]]:
    """``articles`` rows (``story_id`` is set after insert, see :func:`story_updates`)."""
    from pipeline.dedup import content_hash

    return [
        {
            "feed_id": feed_ids[f"bench-{a.feed}"],
            "url": a.url,
            "guid": a.guid,
            "title": a.title,
            "publisher": a.feed,
            "summary": "",
            "text": a.text,
            "text_source": "fulltext",
            "language": a.language,
            "published_at": a.published_at,
            "published_source": "published",
            "day": a.published_at.date(),
            "content_hash": content_hash(a.text),
        }
        for a in articles
    ]


def story_updates(articles: list[BenchArticle], ids_by_guid: dict[str, int]) -> list[dict]:
    """``story_id`` for every stored article: the id of the story's first stored copy."""
    first: dict[int, int] = {}
    for a in sorted(articles, key=lambda a: ids_by_guid.get(a.guid, 1 << 62)):
        if a.guid in ids_by_guid:
            first.setdefault(a.story, ids_by_guid[a.guid])
    return [
        {"id": ids_by_guid[a.guid], "story_id": first[a.story]}
        for a in articles
        if a.guid in ids_by_guid
    ]
