"""The real feed corpus (../shared/corpora/feeds), served by a real local HTTP server.

Every file under ``real/`` and ``odd/`` is ingested into the store on SQLite and
PostgreSQL: no file crashes the run, every entry feedparser yields from a real
feed is stored or rejected with a reason, the documented quirks normalize as
asserted below, and faults (timeouts, 404/500, oversized bodies, an entity
bomb, a redirect loop, invalid bytes) are recorded per feed without losing
anything already stored. See ../shared/corpora/feeds/SOURCES.md for the files.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from sqlalchemy import func, select
from werkzeug import Request, Response

from pipeline.config import Settings
from pipeline.feeds import Rejection, ingest_feeds, normalize_entry
from pipeline.registry import FeedSpec, save_registry
from pipeline.store import session_scope
from pipeline.tables import Article, Feed, RejectedEntry
from tests.http_site import Site
from tests.test_feeds import DATA

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "feeds"
REAL = sorted((CORPUS / "real").glob("*.xml"))
ODD = sorted((CORPUS / "odd").glob("*.xml"))
NOW = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
NOT_FEEDS = {"odd-rss_empty_document"}  # a comment and nothing else: "not a feed"

pytestmark = pytest.mark.skipif(not REAL, reason=f"feed corpus not found at {CORPUS}")


def feed_name(path: Path) -> str:
    return f"{path.parent.name}-{path.stem.lower()}"


def simulated_headers(body: bytes) -> dict[str, str]:
    """The ``Header:`` lines of a feedparser test file (HTTP headers its harness sends)."""
    comment = body.split(b"-->", 1)[0].decode("latin-1")
    headers = {}
    for name, value in re.findall(r"Header:\s*([\w-]+):\s*(.+)", comment):
        headers[name.title()] = value.strip()
    return headers


@pytest.fixture(scope="module")
def corpus() -> Iterator[Site]:
    """Every corpus file at /real/<file> and /odd/<file>, with ETags (304 on a match)."""
    site = Site()
    for path in [*REAL, *ODD]:
        body = path.read_bytes()
        headers = simulated_headers(body) if path.parent.name == "odd" else {}
        content_type = headers.pop("Content-Type", "application/rss+xml")
        site.feed(
            f"/{path.parent.name}/{path.name}", body, content_type=content_type, headers=headers
        )
    site.feed("/feeds/relative_links.xml", (DATA / "relative_links.xml").read_bytes())
    site.server.start()
    yield site
    site.server.stop()


def settings_for(tmp_path: Path, db_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "feeds_file": tmp_path / "feeds.toml",
        "offline": False,
        "http_connect_timeout": 2.0,
        "http_read_timeout": 2.0,
        "http_retries": 1,
        "http_backoff": 0.01,
        "user_agent": "escmon-test/1.0 (+https://e.test)",
    }
    return Settings(**(values | changes))


def ingest(
    tmp_path: Path,
    db_url: str,
    engine,
    site: Site,
    paths: list[Path],
    now: dt.datetime = NOW,
    **changes: Any,
) -> dict[str, int]:
    settings = settings_for(tmp_path, db_url, **changes)
    save_registry(
        settings.feeds_file,
        [
            FeedSpec(feed_name(p), site.url(f"/{p.parent.name}/{p.name}"), fulltext="never")
            for p in paths
        ],
    )
    return ingest_feeds(engine, settings, day=now.date(), now=now, sleep=lambda _s: None)


def stored(engine, name: str) -> list[Article]:
    with session_scope(engine) as session:
        return list(
            session.execute(
                select(Article)
                .join(Feed, Feed.id == Article.feed_id)
                .where(Feed.name == name)
                .order_by(Article.id)
            ).scalars()
        )


def rejected(engine, name: str) -> dict[str, str]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(RejectedEntry.entry_key, RejectedEntry.reason)
            .join(Feed, Feed.id == RejectedEntry.feed_id)
            .where(Feed.name == name)
        )
        return {key: reason for key, reason in rows}


def feed(engine, name: str) -> Feed:
    with session_scope(engine) as session:
        return session.execute(select(Feed).where(Feed.name == name)).scalar_one()


def corpus_file(name: str) -> Path:
    return next(p for p in [*REAL, *ODD] if p.stem == name)


# --- the whole corpus ----------------------------------------------------------------------


def test_every_file_ingests_and_every_real_entry_is_stored_or_rejected(
    tmp_path, db_url, engine, corpus
) -> None:
    counts = ingest(tmp_path, db_url, engine, corpus, [*REAL, *ODD])
    assert counts["feeds_total"] == counts["feeds_due"] == len(REAL) + len(ODD)
    with session_scope(engine) as session:
        failed = set(
            session.execute(select(Feed.name).where(Feed.last_error.is_not(None))).scalars()
        )
        total = session.execute(select(func.count()).select_from(Article)).scalar_one()
    assert failed == NOT_FEEDS
    assert counts["feeds_failed"] == len(NOT_FEEDS)
    assert counts["feeds_ok"] == len(REAL) + len(ODD) - len(NOT_FEEDS)
    assert total == counts["articles_new"] > 1000
    for path in REAL:
        name = feed_name(path)
        url = corpus.url(f"/real/{path.name}")
        keys = set()
        for raw in feedparser.parse(path.read_bytes()).entries:  # feedparser's own reading
            entry = normalize_entry(
                raw, feed_url=url, fetched_at=NOW, publisher="", language_hint=None
            )
            keys.add(entry.key if isinstance(entry, Rejection) else entry.guid)
        kept = {article.guid for article in stored(engine, name)}
        dropped = rejected(engine, name)
        assert keys == kept | set(dropped), name
        assert not kept & set(dropped), name
        assert all(dropped.values()), name  # every rejection says why
    # Second run: every server supports ETags, so every feed answers 304 and nothing is new.
    again = ingest(tmp_path, db_url, engine, corpus, [*REAL, *ODD], now=NOW + dt.timedelta(days=1))
    assert again["feeds_not_modified"] == counts["feeds_ok"]
    assert (again["articles_new"], again["rejected"], again["entries_seen"]) == (0, 0, 0)
    conditional = [h for path, h in corpus.log[-len(REAL) - len(ODD) :]]
    assert sum("If-None-Match" in h for h in conditional) == counts["feeds_ok"]


# --- the documented quirks ------------------------------------------------------------------


def test_missing_dates_fall_back_to_the_fetch_time(tmp_path, db_url, engine, corpus) -> None:
    ingest(
        tmp_path,
        db_url,
        engine,
        corpus,
        [
            corpus_file(n)
            for n in (
                "japantimes",
                "dw",
                "orf-news",
                "uol-noticias",
                "ilmessaggero-mondo",
                "tvn24-biznes",
                "nbcnewyork",
            )
        ],
    )
    japan = stored(engine, "real-japantimes")
    assert len(japan) == 118  # no per-item dates at all
    assert {(a.published_source, a.day) for a in japan} == {("fetched", NOW.date())}
    assert all(a.published_at.replace(tzinfo=dt.UTC) == NOW for a in japan)
    dw = stored(engine, "real-dw")  # RSS 1.0: dates only in dc:date
    assert len(dw) == 141 and {a.published_source for a in dw} == {"updated"}
    assert dw[0].published_at.replace(tzinfo=dt.UTC) == dt.datetime(
        2026, 2, 18, 0, 15, tzinfo=dt.UTC
    )
    assert {a.published_source for a in stored(engine, "real-orf-news")} == {"updated"}
    uol = stored(engine, "real-uol-noticias")  # Portuguese month names: "Seg, 24 Set 2018"
    assert uol[0].published_at.replace(tzinfo=dt.UTC) == dt.datetime(
        2018, 9, 24, 22, 42, 40, tzinfo=dt.UTC
    )
    messaggero = stored(engine, "real-ilmessaggero-mondo")[0]  # Italian: "mer, 16 nov 2022"
    assert messaggero.day == dt.date(2022, 11, 15) and messaggero.published_source == "published"
    tvn = stored(engine, "real-tvn24-biznes")  # two-digit years: "02 Apr 19", "22 Dec 18"
    assert {a.day.year for a in tvn} == {2018, 2019}
    assert tvn[0].published_at.replace(tzinfo=dt.UTC) == dt.datetime(
        2019, 4, 2, 11, 42, tzinfo=dt.UTC
    )
    nbc = stored(engine, "real-nbcnewyork")[0]  # "Sat, Dec 16 2023 02:02:33 PM"
    assert nbc.published_at.hour == 14


def test_odd_encodings_and_byte_order_marks(tmp_path, db_url, engine, corpus) -> None:
    names = (
        "oren-ru",
        "qq-news-china",
        "uol-noticias",
        "yandex-news-moscow",
        "japantimes",
        "moscowtimes",
        "tvn24-biznes",
        "orf-news",
        "meduza",
        "koi8r",
        "utf-16le-bom",
        "utf-32be-autodetect",
        "x80_cp1251",
        "demoronize-1",
        "double-encoded-html",
    )
    counts = ingest(tmp_path, db_url, engine, corpus, [corpus_file(n) for n in names])
    assert counts["feeds_failed"] == 0
    oren = stored(engine, "real-oren-ru")  # windows-1251 and a default namespace
    assert len(oren) == 10 and {a.language for a in oren} == {"ru"}
    assert all(re.search("[а-яА-Я]{4}", a.title) for a in oren)
    qq = stored(engine, "real-qq-news-china")  # GB2312
    assert len(qq) == 20 and {a.language for a in qq} == {"zh"}
    assert all(re.search("[\u4e00-\u9fff]", a.title) for a in qq)
    uol = stored(engine, "real-uol-noticias")  # ISO-8859-1 bytes, no declaration
    assert (
        uol[0].title == "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    )
    yandex = stored(engine, "real-yandex-news-moscow")  # UTF-8 encoded twice
    assert yandex[0].title.startswith("В Москве из-за сильных морозов")
    assert {a.language for a in yandex} == {"ru"}
    japan = {a.guid: a for a in stored(engine, "real-japantimes")}  # mojibake in CDATA
    assert (
        "president-elect’s protectionist"
        in japan[
            "http://www.japantimes.co.jp/news/2017/01/07/business/trump-shock-toyota-tweet-"
            "reverberates-japan-business-community-reacts-concern/"
        ].text
    )
    moscow = stored(engine, "real-moscowtimes")  # UTF-8 BOM before the declaration
    assert len(moscow) == 50
    assert (
        moscow[0].title == "Russian State TV Praises Trump for Avoiding ‘Democracy’ in "
        "Inauguration Speech"
    )
    tvn = stored(engine, "real-tvn24-biznes")  # BOM, Polish
    assert tvn[0].title.startswith("Premier zapowiedział likwidację OFE")
    assert {a.language for a in tvn} == {"pl"}
    assert {a.language for a in stored(engine, "real-orf-news")} == {"de"}  # BOM, RDF
    assert {a.language for a in stored(engine, "real-meduza")} == {"ru"}
    koi8 = stored(engine, "odd-koi8r")  # KOI8-R with no charset anywhere
    assert koi8[0].title == "Как пережить новогоднюю ночь"
    assert feed(engine, "odd-utf-16le-bom").last_status == 200
    assert feed(engine, "odd-utf-32be-autodetect").last_error is None
    assert stored(engine, "odd-demoronize-1")[0].text == "don’t"  # cp1252 code point in UTF-8
    assert stored(engine, "odd-double-encoded-html")[0].text == "…"


def test_relative_links_are_resolved_against_the_feed_url(tmp_path, db_url, engine, corpus) -> None:
    ingest(
        tmp_path,
        db_url,
        engine,
        corpus,
        [corpus_file("http_item_link_base_docuri"), DATA / "relative_links.xml"],
    )
    # feedparser's file has an entry with only a link: rejected, keyed by the resolved URL
    assert rejected(engine, "odd-http_item_link_base_docuri") == {
        corpus.url("/relative/uri"): "no title and no text"
    }
    own = {a.title: a for a in stored(engine, "feeds-relative_links")}
    assert own["Root-relative link with tracking"].url == corpus.url("/news/2024/08/10/troops?id=7")
    assert own["Document-relative link"].url == corpus.url("/feeds/stories/second.html?page=2")
    assert own["Script link"].url is None and own["Script link"].guid == "script-link"


def test_script_tags_never_reach_the_text(tmp_path, db_url, engine, corpus) -> None:
    names = (
        "item_description_script",
        "item_description_crazy",
        "entry_content_script_base64",
        "item_content_encoded_script_nested_cdata",
        "item_description_onclick",
        "entry_content_iframe",
    )
    ingest(tmp_path, db_url, engine, corpus, [corpus_file(n) for n in names])
    # Both reduce to the same text, so the second is a content duplicate of the first.
    script = stored(engine, "odd-item_description_script")
    base64 = stored(engine, "odd-entry_content_script_base64")
    assert [a.text for a in script + base64] == ["safe description"]
    reasons = list(rejected(engine, "odd-item_description_script").values()) + list(
        rejected(engine, "odd-entry_content_script_base64").values()
    )
    assert len(reasons) == 1 and reasons[0].startswith("duplicate content of article")
    crazy = stored(engine, "odd-item_description_crazy")[0].text
    assert crazy == (
        "Crazy HTML -- Can Your Regex Parse This?\n\nDid The Javascript Execute?"
        "\n\nI will execute here, too, if you mouse over me"
    )
    everything = " ".join(a.text for n in names for a in stored(engine, f"odd-{n}"))
    assert "location.href" not in everything and "<script" not in everything
    # an image with an onclick handler is no text at all
    assert list(rejected(engine, "odd-item_description_onclick").values()) == [
        "no title and no text"
    ]


def test_namespaced_rss(tmp_path, db_url, engine, corpus) -> None:
    names = ("oren-ru", "suspilne", "dw", "aljazeera", "foreignpolicy", "tpm", "npr-world")
    counts = ingest(tmp_path, db_url, engine, corpus, [corpus_file(n) for n in names])
    assert counts["feeds_failed"] == 0
    assert len(stored(engine, "real-oren-ru")) == 10  # xmlns="http://backend.userland.com/rss2"
    suspilne = stored(engine, "real-suspilne")  # default namespace, <full-text> element
    assert len(suspilne) == 19  # 20 items, one repeated
    with_text = [a for a in suspilne if a.text != a.title]  # one item has neither text
    assert len(with_text) == 18 and {a.text_source for a in with_text} == {"content"}
    first = suspilne[0]
    assert len(first.text) > 3 * len(first.summary) and first.language == "uk"
    assert len(stored(engine, "real-dw")) == 141  # rdf:RDF with the RSS 1.0 default namespace
    aljazeera = stored(engine, "real-aljazeera")  # <post-id xmlns="com-wordpress:...">
    assert len(aljazeera) == 25 and all("&#039;" not in a.text for a in aljazeera)
    assert all("traffic_source" not in a.url for a in aljazeera)
    tpm = stored(engine, "real-tpm")  # Atom 1.0 with HTML content
    assert len(tpm) == 20 and all("<" not in a.text and "\n\n" in a.text for a in tpm)


def test_ill_formed_feeds_keep_what_feedparser_recovers(tmp_path, db_url, engine, corpus) -> None:
    names = (
        "guardian-world",
        "aaa_illformed",
        "rss_incomplete_cdata",
        "entity_in_doctype",
        "doctype_contains_entity_decl",
        "undeclared_namespace",
    )
    ingest(tmp_path, db_url, engine, corpus, [corpus_file(n) for n in names])
    guardian = feed(engine, "real-guardian-world")  # raw '&' in URLs: not well-formed
    assert guardian.last_error is None
    assert guardian.last_warning.startswith("ill-formed feed: SAXParseException")
    assert len(stored(engine, "real-guardian-world")) == 54
    assert feed(engine, "odd-aaa_illformed").last_warning.startswith("ill-formed feed")
    for name in ("odd-entity_in_doctype", "odd-doctype_contains_entity_decl"):
        assert "DOCTYPE internal subset removed" in feed(engine, name).last_warning
    # the entity in the GUID stays unexpanded: no entity from the network is ever expanded
    assert list(rejected(engine, "odd-entity_in_doctype")) == ["&id;2006-05-04:/blog/"]


# --- faults ---------------------------------------------------------------------------------


def test_faults_are_recorded_per_feed_and_nothing_stored_is_lost(
    tmp_path, db_url, engine, corpus
) -> None:
    bbc = corpus_file("bbc-world").read_bytes()
    moscow = corpus_file("moscowtimes").read_bytes()
    corpus.feed("/faults/bbc.xml", bbc)
    corpus.feed("/faults/moscow.xml", moscow)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    faults = {
        "bbc": corpus.url("/faults/bbc.xml"),
        "moscow": corpus.url("/faults/moscow.xml"),
        "timeout": f"http://127.0.0.1:{silent.getsockname()[1]}/feed.xml",
        "server-error": corpus.url("/faults/500.xml"),
        "not-found": corpus.url("/faults/404.xml"),
        "too-big": corpus.url("/real/dawn-world.xml"),  # 286 KB against a 200 KB cap
        "bomb": corpus.url("/faults/bomb.xml"),
        "loop": corpus.url("/faults/loop.xml"),
        "garbage": corpus.url("/faults/garbage.xml"),
    }
    settings = settings_for(tmp_path, db_url, http_max_bytes=200_000, http_read_timeout=0.3)
    save_registry(
        settings.feeds_file, [FeedSpec(n, faults[n], fulltext="never") for n in ("bbc", "moscow")]
    )
    first = ingest_feeds(engine, settings, day=NOW.date(), now=NOW, sleep=lambda _s: None)
    assert first["articles_new"] == 83
    # Now the good feeds break too, and the faulty ones join.
    corpus.routes["/faults/bbc.xml"] = lambda _r: Response("oops", status=500)
    corpus.routes["/faults/moscow.xml"] = lambda _r: Response(b"\x00\xff" * 10, status=200)
    corpus.routes["/faults/500.xml"] = lambda _r: Response("oops", status=500)
    corpus.feed("/faults/bomb.xml", (DATA / "billion_laughs.xml").read_bytes())
    corpus.routes["/faults/loop.xml"] = lambda _r: Response(
        status=302, headers={"Location": "/faults/loop.xml"}
    )
    corpus.feed("/faults/garbage.xml", bytes(range(256)) * 40)

    def no_route(_request: Request) -> Response:
        return Response("gone", status=404)

    corpus.routes["/faults/404.xml"] = no_route
    save_registry(
        settings.feeds_file, [FeedSpec(n, url, fulltext="never") for n, url in faults.items()]
    )
    later = NOW + dt.timedelta(days=1)
    try:
        counts = ingest_feeds(engine, settings, day=later.date(), now=later, sleep=lambda _s: None)
    finally:
        silent.close()
    assert (counts["feeds_ok"], counts["feeds_failed"]) == (1, 8)  # only the bomb parses
    errors = {name: feed(engine, name).last_error for name in faults}
    assert errors["bbc"] == "HTTP 500 INTERNAL SERVER ERROR"
    assert errors["moscow"].startswith("not a feed")
    assert errors["timeout"] == "timeout: no read within 0.3 s"
    assert errors["server-error"] == "HTTP 500 INTERNAL SERVER ERROR"
    assert errors["not-found"] == "HTTP 404 NOT FOUND"
    assert errors["too-big"].startswith("body of 286233 bytes exceeds the cap of 200000 bytes")
    assert errors["bomb"] is None
    assert "DOCTYPE internal subset removed" in feed(engine, "bomb").last_warning
    assert errors["loop"] == "too many redirects (more than 5)"
    assert errors["garbage"].startswith("not a feed")
    assert feed(engine, "bbc").consecutive_failures == 1
    with session_scope(engine) as session:
        total = session.execute(select(func.count()).select_from(Article)).scalar_one()
    assert total == 83 + 1  # nothing lost; the bomb's one entry, unexpanded
    assert stored(engine, "bomb")[0].title == "Bomb &lol9;"
