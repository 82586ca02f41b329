"""Feeds: fetching against a real local HTTP server, parsing, normalizing, and ``ingest_feeds``."""

from __future__ import annotations

import datetime as dt
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from sqlalchemy import select
from werkzeug import Request, Response

from pipeline.config import Settings
from pipeline.feeds import (
    FeedJob,
    HttpLimits,
    ParsedFeed,
    Rejection,
    canonical_url,
    check_feed,
    detect_language,
    entry_published,
    fetch,
    ingest_feeds,
    make_client,
    normalize_entry,
    normalize_language,
    parse_feed,
    parse_localized_date,
    parse_retry_after,
    process_feed,
    read_feed,
    repair_mojibake,
    strip_internal_subset,
)
from pipeline.registry import FeedSpec, save_registry
from pipeline.store import session_scope
from pipeline.tables import Article, Feed, RejectedEntry
from tests.http_site import Site

DATA = Path(__file__).parent / "data" / "feeds"
NOW = dt.datetime(2024, 8, 10, 12, 0, tzinfo=dt.UTC)
DAY = NOW.date()


# --- a real local HTTP server: tests/http_site.py (fixtures `site` in conftest) ---


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers: reads time out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml"
    sock.close()


@pytest.fixture
def refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/feed.xml"


def limits(**changes: Any) -> HttpLimits:
    values: dict[str, Any] = {
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "retries": 2,
        "backoff": 0.25,
        "user_agent": "escmon-test/1.0 (+https://e.test)",
    }
    return HttpLimits(**(values | changes))


def settings_for(tmp_path: Path, db_url: str = "sqlite://", **changes: Any) -> Settings:
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


def rss(*items: str, title: str = "Test feed", language: str = "en") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://example.test/</link>"
        f"<language>{language}</language>{''.join(items)}</channel></rss>"
    ).encode()


def item(
    guid: str,
    title: str,
    description: str = "",
    *,
    link: str | None = None,
    date: str = "Sat, 10 Aug 2024 09:00:00 GMT",
) -> str:
    link_xml = f"<link>{link}</link>" if link else ""
    return (
        f'<item><title>{title}</title>{link_xml}<guid isPermaLink="false">{guid}</guid>'
        f"<description>{description}</description><pubDate>{date}</pubDate></item>"
    )


def fetch_now(url: str, sleeps: list[float] | None = None, **changes: Any):
    lim = limits(**changes)
    with make_client(lim) as client:
        return fetch(client, url, lim, sleep=(sleeps if sleeps is not None else []).append)


# --- fetching ------------------------------------------------------------------------


def test_fetch_sends_user_agent_accepts_gzip_and_decodes_it(site: Site) -> None:
    body = rss(item("a", "A title", "Some text"))
    site.routes["/gz.xml"] = lambda _r: Response(
        gzip.compress(body), headers={"Content-Encoding": "gzip", "Content-Type": "text/xml"}
    )
    result = fetch_now(site.url("/gz.xml"))
    assert result.ok and result.body == body
    sent = site.requests("/gz.xml")[0]
    assert sent["User-Agent"] == "escmon-test/1.0 (+https://e.test)"
    assert "gzip" in sent["Accept-Encoding"] and "application/rss+xml" in sent["Accept"]


def test_conditional_get_sends_validators_and_reads_304(site: Site) -> None:
    site.feed("/f.xml", rss(item("a", "A")))
    first = fetch_now(site.url("/f.xml"))
    lim = limits()
    with make_client(lim) as client:
        second = fetch(
            client,
            site.url("/f.xml"),
            lim,
            etag=first.headers["etag"],
            last_modified=first.headers["last-modified"],
        )
    assert second.not_modified and not second.ok and second.body == b""
    sent = site.requests("/f.xml")[1]
    assert sent["If-None-Match"] == first.headers["etag"]
    assert sent["If-Modified-Since"] == "Sat, 10 Aug 2024 08:00:00 GMT"


@pytest.mark.parametrize("how", ["content-length", "streamed", "gzip-bomb"])
def test_body_over_the_cap_is_aborted(site: Site, how: str) -> None:
    big = b"<rss>" + b"x" * 300_000 + b"</rss>"
    if how == "content-length":
        site.routes["/big"] = lambda _r: Response(big)
    elif how == "streamed":  # no Content-Length: chunked, counted while reading
        site.routes["/big"] = lambda _r: Response(
            iter([big[i : i + 8192] for i in range(0, len(big), 8192)])
        )
    else:
        site.routes["/big"] = lambda _r: Response(
            gzip.compress(big), headers={"Content-Encoding": "gzip"}
        )
    result = fetch_now(site.url("/big"), max_bytes=100_000)
    assert not result.ok and "cap of 100000 bytes" in (result.error or "")


def test_5xx_is_retried_with_backoff(site: Site) -> None:
    site.sequence(
        "/flaky",
        lambda: Response("down", status=503),
        lambda: Response("down", status=500),
        lambda: Response(rss(item("a", "A"))),
    )
    sleeps: list[float] = []
    result = fetch_now(site.url("/flaky"), sleeps)
    assert result.ok and result.attempts == 3
    assert sleeps == [0.25, 0.5]  # backoff doubles; injected, so nothing really sleeps


def test_429_honours_retry_after_and_gives_up_on_long_waits(site: Site) -> None:
    site.sequence(
        "/busy",
        lambda: Response("slow down", status=429, headers={"Retry-After": "3"}),
        lambda: Response(rss(item("a", "A"))),
    )
    sleeps: list[float] = []
    assert fetch_now(site.url("/busy"), sleeps).ok
    assert sleeps == [3.0]
    site.routes["/busier"] = lambda _r: Response(
        "later", status=429, headers={"Retry-After": "3600"}
    )
    sleeps.clear()
    result = fetch_now(site.url("/busier"), sleeps)
    assert result.error == "HTTP 429 TOO MANY REQUESTS" and result.retry_after == 3600.0
    assert sleeps == [] and result.attempts == 1


def test_404_is_an_error_and_not_retried(site: Site) -> None:
    result = fetch_now(site.url("/nothing-here"))
    assert result.status == 404 and result.error == "HTTP 404 NOT FOUND"
    assert len(site.requests("/nothing-here")) == 1


def test_timeout_is_retried_and_reported(silent_url: str) -> None:
    sleeps: list[float] = []
    started = time.perf_counter()
    result = fetch_now(silent_url, sleeps, read_timeout=0.2, retries=1)
    assert result.error == "timeout: no read within 0.2 s"
    assert result.attempts == 2 and sleeps == [0.25]
    assert time.perf_counter() - started < 3


def test_redirect_loop_and_refused_connection_are_errors(site: Site, refused_url: str) -> None:
    site.routes["/loop"] = lambda _r: Response(status=302, headers={"Location": "/loop"})
    result = fetch_now(site.url("/loop"), max_redirects=3)
    assert result.error == "too many redirects (more than 3)"
    assert len(site.requests("/loop")) == 4
    refused = fetch_now(refused_url)
    assert refused.error is not None and refused.error.startswith("connection failed")
    assert refused.attempts == 1  # not retried: an unreachable host fails fast


def test_redirects_are_followed_to_the_final_url(site: Site) -> None:
    site.routes["/old"] = lambda _r: Response(status=301, headers={"Location": "/new"})
    site.feed("/new", rss(item("a", "A")))
    result = fetch_now(site.url("/old"))
    assert result.ok and result.final_url == site.url("/new")


def test_parse_retry_after() -> None:
    now = dt.datetime(2024, 8, 10, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sat, 10 Aug 2024 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Sat, 10 Aug 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# --- entities ----------------------------------------------------------------------------


def test_billion_laughs_is_not_expanded() -> None:
    started = time.perf_counter()
    parsed, entries, _ = read_feed(
        (DATA / "billion_laughs.xml").read_bytes(),
        url="http://e.test/f",
        headers={},
        name="x",
        language=None,
        fetched_at=NOW,
    )
    assert time.perf_counter() - started < 1
    assert entries[0].title == "Bomb &lol9;"  # the reference stays as text
    assert "lollol" not in entries[0].text
    assert "DOCTYPE internal subset removed (10 declaration(s))" in (parsed.warning or "")


def test_external_entities_are_never_resolved() -> None:
    parsed, entries, _ = read_feed(
        (DATA / "external_entity.xml").read_bytes(),
        url="http://e.test/f",
        headers={},
        name="x",
        language=None,
        fetched_at=NOW,
    )
    assert entries[0].title == "Secrets: &xxe;"
    assert "root:" not in entries[0].text
    assert "DOCTYPE internal subset removed" in (parsed.warning or "")


def test_a_huge_safe_entity_is_not_expanded() -> None:
    # feedparser keeps "safe" entities (no '&' in the value); its loose parser would expand
    # this one to 200 MB. The guard removes the declaration first.
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "'
        + b"A" * 200_000
        + b'">\n]>\n<rss version="2.0"><channel><item><title>'
        + b"&a;" * 1000
        + b"</title><guid>g</guid></item></channel></rss"
    )  # unclosed: loose parser
    started = time.perf_counter()
    _, entries, _ = read_feed(
        body, url="http://e.test/f", headers={}, name="x", language=None, fetched_at=NOW
    )
    assert time.perf_counter() - started < 2
    assert len(entries[0].title) == 3000


@pytest.mark.parametrize(
    "doc",
    [
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "]>">]><rss/>',  # ']>' inside a value
        '<!-- a comment --><!DOCTYPE rss [<!-- ]> --><!ENTITY e "x">]><rss/>',
        'junk\n<!DOCTYPE rss [\n<!ENTITY e "x">\n]>\n<rss/>',
        '<?xml version="1.0"?>\n<!ENTITY e "x">\n<rss/>',  # outside any DOCTYPE
        '<-x\n<!DOCTYPE rss [\n<!ENTITY e "x">\n]>\n<rss/>',  # feedparser reads past "<-"
    ],
)
def test_entity_declarations_are_removed_wherever_they_hide(doc: str) -> None:
    cleaned, warning = strip_internal_subset(doc.encode())
    assert b"ENTITY" not in cleaned and cleaned.endswith(b"<rss/>")
    assert warning is not None


def test_the_guard_handles_utf16_and_leaves_plain_documents_alone() -> None:
    doc = '\ufeff<?xml version="1.0" encoding="utf-16"?><!DOCTYPE rss [<!ENTITY e "x">]><rss/>'
    cleaned, warning = strip_internal_subset(doc.encode("utf-16-le"))
    assert warning is not None
    assert (
        cleaned.decode("utf-16-le") == '\ufeff<?xml version="1.0" encoding="utf-16"?>'
        "<!DOCTYPE rss ><rss/>"
    )
    plain = b'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "http://e.test/rss.dtd">\n<rss/>'
    assert strip_internal_subset(plain) == (plain, None)


# --- parsing and normalizing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://E.test:443/a/b?utm_source=rss&id=3&fbclid=x#frag", "https://e.test/a/b?id=3"),
        ("http://e.test", "http://e.test/"),
        ("/news/1?at_medium=RSS&at_campaign=rss&p=2", "http://base.test/news/1?p=2"),
        ("story.html", "http://base.test/feeds/story.html"),
        ("http://e.test:8080/x?a=%2F&b", "http://e.test:8080/x?a=%2F&b"),
        ("https://e.test/x?traffic_source=rss&gclid=1&UTM_Medium=feed", "https://e.test/x"),
        ("javascript:alert(1)", None),
        ("mailto:a@e.test", None),
        ("http://user:pw@e.test/", None),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),  # IPv6 literal keeps its brackets
        ("http://[2001:DB8::1]/y", "http://[2001:db8::1]/y"),
        ("", None),
    ],
)
def test_canonical_url(link: str, expected: str | None) -> None:
    assert canonical_url(link, "http://base.test/feeds/rss.xml") == expected


def test_normalize_language() -> None:
    assert [normalize_language(c) for c in ("en-US", "en_us", "IT-it", "ru", "", None, "x1")] == [
        "en",
        "en",
        "it",
        "ru",
        None,
        None,
        None,
    ]


def test_not_a_feed_is_an_error_but_ill_formed_feeds_keep_their_entries() -> None:
    page = parse_feed(
        b"<html><head><title>Captcha</title></head><body>no</body></html>", url="http://e.test/"
    )
    assert page.error is not None and page.error.startswith("not a feed")
    broken = rss(item("a", "First", "ok"), item("b", "Second & third", "raw ampersand"))
    parsed = parse_feed(broken, url="http://e.test/")
    assert parsed.error is None and len(parsed.entries) == 2
    assert (parsed.warning or "").startswith("ill-formed feed: SAXParseException")


def test_undeclared_cyrillic_charset_is_detected() -> None:
    body = (
        '<rss version="2.0"><channel><title>Новости</title><item><title>Как пережить '
        "новогоднюю ночь</title><description>Наверное, единственное, во что сегодня можно "
        "верить безоговорочно, так это в то, что Новый год обязательно наступит."
        "</description><guid>g</guid></item></channel></rss>"
    ).encode("koi8-r")
    assert feedparser.parse(body).entries[0].title != "Как пережить новогоднюю ночь"
    parsed = parse_feed(body, url="http://e.test/")
    assert parsed.entries[0].title == "Как пережить новогоднюю ночь"


def _raw(**fields: Any) -> feedparser.FeedParserDict:
    return feedparser.FeedParserDict(fields)


def test_published_time_fallbacks() -> None:
    t = time.strptime("2024-08-09 07:30:00", "%Y-%m-%d %H:%M:%S")
    late = time.strptime("2024-08-20 07:30:00", "%Y-%m-%d %H:%M:%S")
    nine = dt.datetime(2024, 8, 9, 7, 30, tzinfo=dt.UTC)
    assert entry_published(_raw(published_parsed=t), NOW) == (nine, "published")
    assert entry_published(_raw(updated_parsed=t), NOW) == (nine, "updated")
    assert entry_published(_raw(), NOW) == (NOW, "fetched")
    assert entry_published(_raw(published_parsed=late), NOW) == (NOW, "fetched")  # future
    assert entry_published(
        _raw(published="Seg, 24 Set 2018 19:42:40 -0300", published_parsed=None), NOW
    ) == (dt.datetime(2018, 9, 24, 22, 42, 40, tzinfo=dt.UTC), "published")
    pm = time.strptime("2023-12-16 02:02:33", "%Y-%m-%d %H:%M:%S")
    assert (
        entry_published(_raw(published="Sat, Dec 16 2023 02:02:33 PM", published_parsed=pm), NOW)[
            0
        ].hour
        == 14
    )


def test_parse_localized_date() -> None:
    assert parse_localized_date("mer, 16 nov 2022 00:38:15 +0100") == dt.datetime(
        2022, 11, 15, 23, 38, 15, tzinfo=dt.UTC
    )
    assert parse_localized_date("12 marzo 2024 10:00:00 GMT") == dt.datetime(
        2024, 3, 12, 10, 0, tzinfo=dt.UTC
    )
    assert parse_localized_date("someday") is None


def test_repair_mojibake() -> None:
    assert repair_mojibake("president-electâ€™s plan") == "president-elect’s plan"
    assert repair_mojibake("Ð¯Ð½Ð´ÐµÐºÑ\x81") == "Яндекс"
    assert repair_mojibake("Straße… und Fuß") == "Straße… und Fuß"  # a lone look-alike stays
    assert repair_mojibake("plain ascii") == "plain ascii"


def test_detect_language() -> None:
    assert detect_language("Russia said on Monday that the talks with Ukraine were over.") == "en"
    assert (
        detect_language(
            "Министерство обороны России заявило в понедельник, что войска отведены от границы.",
            "en",
        )
        == "ru"
    )
    assert detect_language("Kyiv", "uk") == "uk"  # too short to overrule the declared language
    assert detect_language("", "pl") == "pl"


def test_normalize_entry_builds_title_blank_line_body() -> None:
    raw = _raw(
        id=" g1 ",
        title="A <b>bold</b> &amp; big   title",
        link="/a?utm_source=x",
        summary="<p>Short summary.</p><script>evil()</script>",
        content=[{"value": "<p>The longer content of the entry.</p><p>Second.</p>"}],
        published_parsed=time.strptime("2024-08-09", "%Y-%m-%d"),
        language="en-GB",
    )
    entry = normalize_entry(
        raw, feed_url="https://e.test/feed", fetched_at=NOW, publisher="Pub", language_hint="de"
    )
    assert not isinstance(entry, Rejection)
    assert (entry.guid, entry.url) == ("g1", "https://e.test/a")
    assert entry.title == "A bold & big title"
    assert entry.summary == "Short summary."
    assert entry.text == "A bold & big title\n\nThe longer content of the entry.\n\nSecond."
    assert (entry.text_source, entry.language_hint) == ("content", "en")
    only_title = normalize_entry(
        _raw(title="Same", summary="Same", link="http://e.test/x"),
        feed_url="",
        fetched_at=NOW,
        publisher="P",
        language_hint=None,
    )
    assert not isinstance(only_title, Rejection)
    assert (only_title.text, only_title.guid) == ("Same", "http://e.test/x")
    empty = normalize_entry(
        _raw(link="http://e.test/y"), feed_url="", fetched_at=NOW, publisher="P", language_hint=None
    )
    assert empty == Rejection("http://e.test/y", "no title and no text")


def test_process_feed_never_raises(site: Site) -> None:
    site.feed("/html", b"<html><body>Not a feed</body></html>", content_type="text/html")
    lim = limits()
    with make_client(lim) as client:
        outcome = process_feed(
            client, FeedJob(1, "x", site.url("/html")), lim, now=NOW, sleep=lambda _s: None
        )
        bad_url = process_feed(
            client, FeedJob(2, "y", "http://[::1"), lim, now=NOW, sleep=lambda _s: None
        )
    assert outcome.status == "failed" and outcome.error.startswith("not a feed")
    assert bad_url.status == "failed" and bad_url.error.startswith("invalid URL")


# --- ingest_feeds -------------------------------------------------------------------------


def register(settings: Settings, *specs: FeedSpec) -> None:
    save_registry(settings.feeds_file, list(specs))


def articles(engine) -> list[Any]:
    with session_scope(engine) as session:
        return list(session.execute(select(Article).order_by(Article.id)).scalars())


def feed_row(engine, name: str) -> Feed:
    with session_scope(engine) as session:
        return session.execute(select(Feed).where(Feed.name == name)).scalar_one()


def two_feeds(site: Site, *, etag: bool = True) -> None:
    site.feed(
        "/one.xml",
        rss(
            item(
                "1-a",
                "Belarus moves troops to the border",
                "Belarus said on Saturday that it had moved troops to the border with Ukraine.",
                link="/news/a?utm_source=rss",
            ),
            item(
                "1-b",
                "Poland signs air defence deal",
                "Poland signed a contract for new air defence systems on Friday.",
                date="Fri, 09 Aug 2024 22:30:00 +0300",
            ),
            title="Feed One",
        ),
        etag=etag,
    )
    site.feed(
        "/two.xml",
        rss(
            item(
                "2-a",
                "Москва заявила о переговорах",
                "Министерство иностранных дел России заявило, что переговоры продолжатся.",
                link="/ru/1",
            ),
            title="Feed Two",
            language="ru",
        ),
        etag=etag,
    )


def test_ingest_twice_stores_once_and_sends_conditional_requests(tmp_path, engine, site) -> None:
    two_feeds(site)
    settings = settings_for(tmp_path)
    register(
        settings,
        FeedSpec("one", site.url("/one.xml"), fulltext="never"),
        FeedSpec("two", site.url("/two.xml"), language="ru", fulltext="never"),
    )
    first = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (
        first["feeds_total"],
        first["feeds_ok"],
        first["entries_seen"],
        first["articles_new"],
    ) == (2, 2, 3, 3)
    second = ingest_feeds(engine, settings, day=DAY, now=NOW + dt.timedelta(hours=1))
    assert (second["feeds_not_modified"], second["articles_new"], second["entries_seen"]) == (
        2,
        0,
        0,
    )
    assert all("If-None-Match" in h for h in site.requests("/one.xml")[1:])
    assert len(articles(engine)) == 3


def test_second_run_without_conditional_support_stores_nothing(tmp_path, engine, site) -> None:
    two_feeds(site, etag=False)
    settings = settings_for(tmp_path)
    register(
        settings,
        FeedSpec("one", site.url("/one.xml"), fulltext="never"),
        FeedSpec("two", site.url("/two.xml"), fulltext="never"),
    )
    assert ingest_feeds(engine, settings, day=DAY, now=NOW)["articles_new"] == 3
    second = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (
        second["feeds_ok"],
        second["entries_seen"],
        second["entries_known"],
        second["articles_new"],
        second["rejected"],
    ) == (2, 3, 3, 0, 0)


def test_stored_article_fields(tmp_path, engine, site) -> None:
    two_feeds(site)
    settings = settings_for(tmp_path)
    register(
        settings,
        FeedSpec("one", site.url("/one.xml"), fulltext="never"),
        FeedSpec("two", site.url("/two.xml"), fulltext="never"),
    )
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert counts["stories_new"] == 3
    by_guid = {a.guid: a for a in articles(engine)}
    a = by_guid["1-a"]
    assert a.url == site.url("/news/a")  # resolved against the feed URL, tracking dropped
    assert a.text == (
        "Belarus moves troops to the border\n\nBelarus said on Saturday that it "
        "had moved troops to the border with Ukraine."
    )
    assert (a.publisher, a.language, a.text_source, a.published_source) == (
        "Feed One",
        "en",
        "summary",
        "published",
    )
    assert a.day == DAY and a.story_id == a.id and a.fulltext_error is None
    b = by_guid["1-b"]  # 22:30 at +03:00 is 19:30 UTC the same day
    assert b.day == dt.date(2024, 8, 9) and b.url is None
    assert by_guid["2-a"].language == "ru"  # stored and marked, never dropped
    one = feed_row(engine, "one")
    assert (one.last_status, one.last_error, one.consecutive_failures) == (200, None, 0)
    assert one.etag and one.last_modified == "Sat, 10 Aug 2024 08:00:00 GMT"


def test_duplicates_across_feeds_are_rejected_with_a_reason(tmp_path, engine, site) -> None:
    body = "Belarus said on Saturday that it had moved troops to the border with Ukraine."
    site.feed("/a.xml", rss(item("a1", "Troops moved", body, link="http://news.test/story")))
    site.feed(
        "/b.xml",
        rss(
            item(
                "b1",
                "Troops moved (copy)",
                "Other text entirely here.",
                link="http://news.test/story?utm_campaign=x",
            ),
            item("b2", "Troops moved", body, link="http://mirror.test/s"),
        ),
    )
    settings = settings_for(tmp_path)
    register(
        settings,
        FeedSpec("a", site.url("/a.xml"), fulltext="never"),
        FeedSpec("b", site.url("/b.xml"), fulltext="never"),
    )
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["articles_new"], counts["rejected"]) == (1, 2)
    with session_scope(engine) as session:
        reasons = {
            key: reason
            for key, reason in session.execute(
                select(RejectedEntry.entry_key, RejectedEntry.reason)
            )
        }
    assert reasons["b1"].startswith("duplicate URL")
    assert reasons["b2"].startswith("duplicate content")
    again = ingest_feeds(engine, settings, day=DAY, now=NOW + dt.timedelta(hours=1))
    assert (again["articles_new"], again["rejected"]) == (0, 0)


def test_a_failing_feed_is_recorded_backed_off_and_never_fails_the_run(
    tmp_path, engine, site
) -> None:
    two_feeds(site)
    settings = settings_for(tmp_path)
    register(
        settings,
        FeedSpec("one", site.url("/one.xml"), fulltext="never"),
        FeedSpec("gone", site.url("/gone.xml")),
    )
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["feeds_ok"], counts["feeds_failed"], counts["articles_new"]) == (1, 1, 2)
    gone = feed_row(engine, "gone")
    assert (gone.last_status, gone.last_error, gone.consecutive_failures) == (
        404,
        "HTTP 404 NOT FOUND",
        1,
    )
    assert gone.next_attempt_at.replace(tzinfo=dt.UTC) == NOW + dt.timedelta(minutes=15)
    soon = ingest_feeds(engine, settings, day=DAY, now=NOW + dt.timedelta(minutes=5))
    assert (soon["feeds_waiting"], soon["feeds_due"]) == (1, 1)
    assert len(site.requests("/gone.xml")) == 1
    later = ingest_feeds(engine, settings, day=DAY, now=NOW + dt.timedelta(hours=1))
    assert later["feeds_failed"] == 1
    assert feed_row(engine, "gone").consecutive_failures == 2


def test_offline_reports_feeds_unreachable_without_network(tmp_path, engine, site) -> None:
    settings = settings_for(tmp_path, offline=True)
    register(settings, FeedSpec("one", site.url("/one.xml")), FeedSpec("two", site.url("/t")))
    started = time.perf_counter()
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert time.perf_counter() - started < 5
    assert (counts["feeds_total"], counts["feeds_failed"], counts["articles_new"]) == (2, 2, 0)
    assert site.log == []
    row = feed_row(engine, "one")
    assert row.last_error.startswith("offline") and row.consecutive_failures == 0


def test_unreachable_host_is_a_recorded_failure(tmp_path, engine, refused_url) -> None:
    settings = settings_for(tmp_path)
    register(settings, FeedSpec("down", refused_url))
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert counts["feeds_failed"] == 1
    assert feed_row(engine, "down").last_error.startswith("connection failed")


def test_missing_registry_is_an_error_naming_the_setting(tmp_path, engine) -> None:
    from pipeline.registry import RegistryError

    with pytest.raises(RegistryError, match="ESCMON_FEEDS_FILE"):
        ingest_feeds(engine, settings_for(tmp_path), day=DAY)  # the DAG path, too


def test_missing_registry_offline_means_no_feeds(tmp_path, engine) -> None:
    settings = settings_for(tmp_path)
    settings.offline = True
    counts = ingest_feeds(engine, settings, day=DAY)
    assert counts["feeds_total"] == 0 and counts["articles_new"] == 0


def test_registry_sync_disables_removed_feeds_and_resets_moved_ones(tmp_path, engine, site) -> None:
    two_feeds(site)
    settings = settings_for(tmp_path)
    register(
        settings,
        FeedSpec("one", site.url("/one.xml"), fulltext="never"),
        FeedSpec("two", site.url("/two.xml"), fulltext="never"),
        FeedSpec("off", site.url("/off.xml"), enabled=False),
    )
    ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert site.requests("/off.xml") == []
    assert feed_row(engine, "one").etag is not None
    register(settings, FeedSpec("one", site.url("/two.xml"), fulltext="never", country="RUS"))
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    one = feed_row(engine, "one")
    assert one.url == site.url("/two.xml") and one.tags == ["country:RUS"]
    assert "If-None-Match" not in site.requests("/two.xml")[-1]  # old validators dropped
    assert not feed_row(engine, "two").enabled
    assert counts["feeds_total"] == 1 and len(articles(engine)) == 3  # nothing deleted


def test_fulltext_auto_fetches_pages_for_short_entries(tmp_path, engine, site) -> None:
    site.routes["/article"] = lambda _r: Response(
        (DATA / "article.html").read_bytes(), content_type="text/html; charset=utf-8"
    )
    title = "Belarus moves troops to Ukrainian border after drone incident"
    site.feed(
        "/ft.xml",
        rss(
            item("ok", title, "Short teaser.", link="/article"),
            item("missing", "A page that is gone", "Another teaser.", link="/missing"),
            item("nolink", "No link at all", "A third teaser."),
        ),
    )
    settings = settings_for(tmp_path)
    register(settings, FeedSpec("ft", site.url("/ft.xml"), fulltext="auto"))
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["fulltext_ok"], counts["fulltext_failed"]) == (1, 1)
    by_guid = {a.guid: a for a in articles(engine)}
    ok = by_guid["ok"]
    assert ok.text_source == "fulltext" and ok.summary == "Short teaser."
    assert ok.text.startswith(title + "\n\nBelarus has deployed additional troops")
    assert ok.text.count(title) == 1  # the page's own headline is not repeated
    for noise in ("Subscribe now", "footer script", "Celebrity", "Cookie", "tracking"):
        assert noise not in ok.text
    missing = by_guid["missing"]
    assert (missing.text_source, missing.fulltext_error) == ("summary", "HTTP 404 NOT FOUND")
    assert missing.text == "A page that is gone\n\nAnother teaser."
    assert by_guid["nolink"].fulltext_error is None
    ingest_feeds(engine, settings, day=DAY, now=NOW)  # 304: pages are not fetched again
    assert len(site.requests("/article")) == 1


def test_fulltext_never_fetches_no_pages(tmp_path, engine, site) -> None:
    site.feed("/ft.xml", rss(item("ok", "Title", "Short teaser.", link="/article")))
    settings = settings_for(tmp_path)
    register(settings, FeedSpec("ft", site.url("/ft.xml"), fulltext="never"))
    assert ingest_feeds(engine, settings, day=DAY, now=NOW)["fulltext_ok"] == 0
    assert site.requests("/article") == []


# --- check_feed ---------------------------------------------------------------------------


def test_check_feed_reports_status_entries_and_problems(tmp_path, site) -> None:
    site.feed("/good.xml", rss(item("a", "A title", "Text.")))
    site.feed(
        "/undated.xml",
        rss(item("a", "A title", "Text.", date=""), "<item><link>http://e.test/x</link></item>"),
    )
    settings = settings_for(tmp_path)
    good = check_feed(site.url("/good.xml"), settings)
    assert (good.status, good.entries, good.problems, good.http_status, good.title) == (
        "ok",
        1,
        [],
        200,
        "Test feed",
    )
    assert good.elapsed > 0
    undated = check_feed(site.url("/undated.xml"), settings)
    assert undated.status == "warning" and undated.entries == 2
    assert "1 entries without a date (the fetch time will be used)" in undated.problems
    assert "1 entries would be rejected: no title and no text" in undated.problems
    missing = check_feed(site.url("/missing.xml"), settings)
    assert (missing.status, missing.problems) == ("failed", ["HTTP 404 NOT FOUND"])
    offline = check_feed(site.url("/good.xml"), settings_for(tmp_path, offline=True))
    assert offline.status == "failed" and offline.problems[0].startswith("offline")


def test_parsed_feed_is_plain_data() -> None:
    parsed = parse_feed(rss(item("a", "T", "x")), url="http://e.test/")
    assert isinstance(parsed, ParsedFeed) and parsed.title == "Test feed"
    assert parsed.language == "en" and parsed.version == "rss20"


def test_feeds_are_fetched_concurrently_within_the_bound(tmp_path, engine, site) -> None:
    # Each request waits at a two-party barrier: with at most two requests in flight the
    # barrier always trips (proof of parallelism); a third would show up in the count.
    barrier = threading.Barrier(2, timeout=5)
    lock = threading.Lock()
    flight = {"now": 0, "max": 0}

    def handler(request: Request) -> Response:
        with lock:
            flight["now"] += 1
            flight["max"] = max(flight["max"], flight["now"])
        try:
            barrier.wait()
        finally:
            with lock:
                flight["now"] -= 1
        return Response(rss(item(request.path, f"Story at {request.path}", "Some text here.")))

    for n in range(6):
        site.routes[f"/c{n}.xml"] = handler
    settings = settings_for(tmp_path, http_concurrency=2)
    register(
        settings, *[FeedSpec(f"c{n}", site.url(f"/c{n}.xml"), fulltext="never") for n in range(6)]
    )

    class Progress:
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        def start(self, description: str, total: int | None) -> None:
            self.calls.append(("start", (description, total)))

        def advance(self, amount: int = 1) -> None:
            self.calls.append(("advance", amount))

    progress = Progress()
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW, progress=progress)
    assert (counts["feeds_ok"], counts["articles_new"]) == (6, 6)
    assert flight["max"] == 2
    assert progress.calls[0] == ("start", ("feeds", 6))
    assert progress.calls.count(("advance", 1)) == 6


def test_bench_ingest_runs_on_corpus_files() -> None:
    from bench.bench_ingest import bench_ingest

    result = bench_ingest([DATA / "relative_links.xml", DATA / "billion_laughs.xml"], repeat=1)
    assert (result["files"], result["entries"]) == (2, 4)
    assert result["feedparser_s"] > 0 and result["ratio"] > 0
