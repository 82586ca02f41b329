"""Full text: when to fetch the page, and main-text extraction from real pages over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug import Response

from pipeline.feeds import FetchResult, fetch, make_client
from pipeline.fulltext import (
    AUTO_MIN_CHARS,
    extract_main_text,
    fetch_fulltext,
    page_charset,
    wants_fulltext,
)
from tests.http_site import Site
from tests.test_feeds import limits

DATA = Path(__file__).parent / "data" / "feeds"
ARTICLE = (DATA / "article.html").read_bytes()


@pytest.fixture
def get() -> Iterator[Callable[[str], FetchResult]]:
    """The feed client's fetch, as ``fetch_fulltext`` is given it during ingestion."""
    lim = limits(retries=0)
    with make_client(lim) as client:
        yield lambda url: fetch(client, url, lim)


def test_wants_fulltext_by_mode() -> None:
    short, long = "A teaser.", "x" * AUTO_MIN_CHARS
    assert wants_fulltext("auto", short, "https://e.test/a")
    assert not wants_fulltext("auto", long, "https://e.test/a")
    assert wants_fulltext("always", long, "https://e.test/a")
    assert not wants_fulltext("never", short, "https://e.test/a")
    assert not wants_fulltext("always", short, None)
    with pytest.raises(ValueError, match="fulltext mode must be one of"):
        wants_fulltext("sometimes", short, "https://e.test/a")


def test_extract_main_text_keeps_the_article_and_drops_the_chrome() -> None:
    text = extract_main_text(ARTICLE, "https://e.test/a")
    lines = text.splitlines()
    assert lines[0] == "Belarus moves troops to Ukrainian border after drone incident"
    assert lines[1].startswith("Belarus has deployed additional troops")
    assert lines[-1].endswith("had ended within weeks.")
    for noise in ("Subscribe", "Most read", "Celebrity", "Copyright", "tracking", "console"):
        assert noise not in text
    assert extract_main_text(b"<html><body></body></html>") == ""


def test_fetch_fulltext_over_http(site: Site, get: Callable[[str], FetchResult]) -> None:
    site.routes["/article"] = lambda _r: Response(ARTICLE, content_type="text/html; charset=utf-8")
    site.routes["/pdf"] = lambda _r: Response(b"%PDF-1.4", content_type="application/pdf")
    site.routes["/empty"] = lambda _r: Response(
        b"<html><body><nav>Home</nav></body></html>", content_type="text/html"
    )
    site.routes["/latin1"] = lambda _r: Response(
        ARTICLE.replace(b"Minsk", "Mińsk".encode("iso-8859-2")),
        content_type="text/html; charset=iso-8859-2",
    )
    ok = fetch_fulltext(site.url("/article"), get)
    assert ok.error is None and "Iskander missile elements" in (ok.text or "")
    assert fetch_fulltext(site.url("/latin1"), get).text.count("Mińsk") == 1
    assert fetch_fulltext(site.url("/missing"), get).error == "HTTP 404 NOT FOUND"
    assert fetch_fulltext(site.url("/pdf"), get).error == "not an HTML page (application/pdf)"
    assert fetch_fulltext(site.url("/empty"), get).error == "no main text found on the page"


def test_page_charset() -> None:
    assert page_charset({"content-type": 'text/html; charset="windows-1251"'}) == "windows-1251"
    assert page_charset({"content-type": "text/html"}) is None
    assert page_charset({}) is None
