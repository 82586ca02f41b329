"""The seed source: every ``seeds/*.txt`` article, with metadata from ``<name>.meta.json``."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select, update

from pipeline.dedup import content_hash
from pipeline.errors import EscmonError
from pipeline.store import insert_ignore, session_scope
from pipeline.tables import Article, Feed

SEED_FEED = "seed"


class SeedError(EscmonError, ValueError):
    """A seed file or its metadata is unusable; the message names the file and the fix."""


@dataclass(frozen=True)
class SeedArticle:
    guid: str
    title: str
    publisher: str
    url: str | None
    published: dt.date
    language: str
    text: str


def read_seed(path: Path) -> SeedArticle:
    """Read one seed article and its ``.meta.json`` (all metadata fields optional)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise SeedError(f"{path}: not UTF-8 text ({exc.reason}); re-save it as UTF-8") from exc
    if not text:
        raise SeedError(f"{path}: the file is empty; add the article text or remove the file")
    meta_path = path.with_suffix(".meta.json")
    meta: dict = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SeedError(f"{meta_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    published = meta.get("published")
    try:
        day = dt.date.fromisoformat(published) if published else _file_date(path)
    except ValueError as exc:
        raise SeedError(f"{meta_path}: 'published' must be YYYY-MM-DD, got {published!r}") from exc
    return SeedArticle(
        guid=f"seed:{path.name}",
        title=meta.get("title") or path.stem,
        publisher=meta.get("publisher") or "seed",
        url=meta.get("url"),
        published=day,
        language=meta.get("language") or "en",
        text=text,
    )


def _file_date(path: Path) -> dt.date:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date()


def seed_files(seeds_dir: Path) -> list[Path]:
    if not seeds_dir.is_dir():
        raise SeedError(f"{seeds_dir}: seeds folder not found; set ESCMON_SEEDS_DIR")
    return sorted(seeds_dir.glob("*.txt"))


def ensure_seed_feed(session, seeds_dir: Path) -> int:
    row = {
        "name": SEED_FEED,
        "kind": "seed",
        "url": str(seeds_dir),
        "language": None,
        "tags": ["seed"],
        "enabled": True,
        "fulltext": "never",
    }
    insert_ignore(session, Feed, [row], returning=None)
    return session.execute(select(Feed.id).where(Feed.name == SEED_FEED)).scalar_one()


def seed_rows(feed_id: int, seeds: list[SeedArticle]) -> list[dict]:
    return [
        {
            "feed_id": feed_id,
            "url": seed.url,
            "guid": seed.guid,
            "title": seed.title,
            "publisher": seed.publisher,
            "summary": "",
            "text": seed.text,
            "text_source": "seed",
            "language": seed.language,
            "published_at": dt.datetime.combine(seed.published, dt.time(), dt.UTC),
            "published_source": "seed",
            "day": seed.published,
            "content_hash": content_hash(seed.text),
        }
        for seed in seeds
    ]


def ingest_seeds(engine: Engine, seeds_dir: Path) -> dict[str, int]:
    """Store every seed article not stored yet; returns counts."""
    seeds = [read_seed(path) for path in seed_files(seeds_dir)]
    with session_scope(engine) as session:
        feed_id = ensure_seed_feed(session, seeds_dir)
        inserted = insert_ignore(session, Article, seed_rows(feed_id, seeds))
        # A new article is its own story until dedup groups it.
        if inserted:
            session.execute(
                update(Article).where(Article.id.in_(inserted)).values(story_id=Article.id)
            )
    return {"seed_files": len(seeds), "articles_new": len(inserted)}
