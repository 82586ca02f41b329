"""The outbound fetch policy for article pages, download deadlines and the ingest deadline.

Entry links come from feed content: their pages may only come from public
addresses (checked after resolution, on every redirect hop, connecting to the
checked address) unless allow-listed. Host names are resolved by a resolver
passed in (configuration, like a setting): ``news.example`` and friends map to
127.0.0.1 so that no test leaves the machine. Slow servers are raw sockets in
a thread that trickle bytes while the client's deadline runs out.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from werkzeug import Request, Response

from pipeline.config import Settings
from pipeline.daily import RunContext, run_stage
from pipeline.feeds import FeedJob, FeedOutcome, fetch, ingest_feeds, make_client, read_feed
from pipeline.feeds.http import FetchPolicy, address_problem, parse_allow_list, system_resolve
from pipeline.feeds.ingest import add_fulltext
from pipeline.registry import FeedSpec
from tests.http_site import Site
from tests.test_feeds import (
    DATA,
    DAY,
    NOW,
    articles,
    feed_row,
    item,
    limits,
    register,
    rss,
    settings_for,
)

ARTICLE = (DATA / "article.html").read_bytes()
TITLE = "Belarus moves troops to Ukrainian border after drone incident"


class Resolver:
    """A resolver given to the policy: names to addresses, recording each lookup.

    ``localhost`` goes to the system resolver, as it would in production."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        if host == "localhost":
            return system_resolve(host)
        if host not in self.names:
            raise socket.gaierror(f"unknown test name {host}")
        return self.names[host]


def port_of(site: Site) -> int:
    return int(site.server.port)


def page_client(policy: FetchPolicy, **changes: Any):
    lim = limits(retries=0, **changes)
    return lim, make_client(lim, policy)


def serve_article(site: Site, path: str = "/article") -> None:
    site.routes[path] = lambda _r: Response(ARTICLE, content_type="text/html; charset=utf-8")


def redirect(site: Site, path: str, location: str) -> None:
    site.routes[path] = lambda _r: Response(status=302, headers={"Location": location})


# --- the policy's address rules ----------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("fc00::1", "private"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ],
)
def test_internal_addresses_are_refused(address: str, kind: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and kind in problem


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_allow_list_setting_parses_names_addresses_and_networks(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no escmon.toml
    monkeypatch.setenv("ESCMON_FETCH_ALLOW_HOSTS", "Intranet.Example., 10.20.0.0/16, [::1]")
    settings = Settings()
    assert settings.fetch_allow_hosts == ["Intranet.Example.", "10.20.0.0/16", "[::1]"]
    hosts, networks = parse_allow_list(settings.fetch_allow_hosts)
    assert hosts == {"intranet.example"}
    assert [str(n) for n in networks] == ["10.20.0.0/16", "::1/128"]
    assert Settings(fetch_allow_hosts=[]).fetch_allow_hosts == []
    for bad in ("10.0.0.0/33", "http://intranet.example/", "a b"):
        with pytest.raises(ValidationError, match="neither a host name nor an IP"):
            Settings(fetch_allow_hosts=bad)
    defaults = Settings()
    assert (defaults.http_feed_deadline, defaults.http_page_deadline) == (60.0, 30.0)
    assert defaults.ingest_deadline == 900.0


# --- the policy over HTTP (a page client, no store) --------------------------------


def test_page_client_refuses_internal_urls_before_sending_anything(site: Site) -> None:
    port = port_of(site)
    site.routes["/secret"] = lambda _r: Response("internal", content_type="text/html")
    resolver = Resolver({"loop.example": ["127.0.0.1"], "mapped.example": ["::ffff:127.0.0.1"]})
    lim, client = page_client(FetchPolicy(resolve=resolver))
    refused = {
        f"http://127.0.0.1:{port}/secret": "127.0.0.1 is a loopback address",
        f"http://[::1]:{port}/secret": "::1 is a loopback address",
        f"http://[::ffff:127.0.0.1]:{port}/secret": "a loopback address (127.0.0.1 inside IPv6)",
        f"http://localhost:{port}/secret": "localhost resolves to",
        f"http://loop.example:{port}/secret": "loop.example resolves to 127.0.0.1",
        f"http://mapped.example:{port}/secret": "mapped.example resolves to ::ffff:",
        "http://10.1.2.3/secret": "10.1.2.3 is a private address",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
        f"ftp://127.0.0.1:{port}/secret": "only http and https URLs are fetched, not ftp:",
        f"gopher://127.0.0.1:{port}/secret": "only http and https URLs are fetched, not gopher:",
        "file:///etc/passwd": "only http and https URLs with a host are fetched",
    }
    with client:
        for url, reason in refused.items():
            result = fetch(client, url, lim)
            assert result.error is not None and result.error.startswith("refused: "), url
            assert reason in result.error, (url, result.error)
            assert result.status is None and result.attempts == 1
    assert site.log == []
    assert resolver.calls == ["localhost", "loop.example", "mapped.example"]  # not addresses


def test_a_redirect_hop_to_an_internal_address_is_refused(site: Site) -> None:
    """The first hop is a name allowed by the list; the hop it redirects to is checked again."""
    port = port_of(site)
    site.routes["/secret"] = lambda _r: Response("internal", content_type="text/html")
    redirect(site, "/to-loopback", f"http://127.0.0.1:{port}/secret")
    redirect(site, "/to-name", f"http://sneaky.example:{port}/secret")
    redirect(site, "/to-ftp", f"ftp://127.0.0.1:{port}/secret")
    resolver = Resolver({"news.example": ["127.0.0.1"], "sneaky.example": ["127.0.0.1"]})
    policy = FetchPolicy(allow_hosts=frozenset({"news.example"}), resolve=resolver)
    lim, client = page_client(policy)
    with client:
        hop = fetch(client, f"http://news.example:{port}/to-loopback", lim)
        assert hop.error == (
            "refused: 127.0.0.1 is a loopback address (allow it in ESCMON_FETCH_ALLOW_HOSTS)"
        )
        name_hop = fetch(client, f"http://news.example:{port}/to-name", lim)
        assert name_hop.error is not None
        assert name_hop.error.startswith("refused: sneaky.example resolves to 127.0.0.1")
        scheme_hop = fetch(client, f"http://news.example:{port}/to-ftp", lim)
        assert scheme_hop.error == "refused: only http and https URLs are fetched, not ftp:"
    assert [path for path, _ in site.log] == ["/to-loopback", "/to-name", "/to-ftp"]
    assert site.requests("/secret") == []


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(site: Site) -> None:
    """``pinned.example`` exists only in the given resolver: reaching the server proves the
    socket went to the address that was checked, not to a second (system) lookup."""
    port = port_of(site)
    serve_article(site)
    resolver = Resolver({"pinned.example": ["127.0.0.1"]})
    policy = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), resolve=resolver)
    lim, client = page_client(policy)
    with client:
        result = fetch(client, f"http://pinned.example:{port}/article", lim)
    assert result.ok and result.body == ARTICLE
    assert site.requests("/article")[0]["Host"] == f"pinned.example:{port}"
    assert resolver.calls == ["pinned.example"]  # resolved once, for the one connection


# --- the policy in the ingest stage -----------------------------------------------


def test_ingest_refuses_internal_article_links_and_keeps_the_summaries(
    tmp_path: Path, engine, site: Site
) -> None:
    port = port_of(site)
    hits: list[str] = []

    def secret(request: Request) -> Response:
        hits.append(request.full_path)
        return Response(ARTICLE, content_type="text/html")

    site.routes["/secret"] = secret
    redirect(site, "/r", f"http://127.0.0.1:{port}/secret?via-redirect")
    links = {
        "loopback": f"http://127.0.0.1:{port}/secret?a",
        "localhost": f"http://localhost:{port}/secret?b",
        "ipv6": f"http://[::1]:{port}/secret?c",
        "private": "http://10.1.2.3/secret?d",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "name-to-loopback": f"http://sneaky.example:{port}/secret?f",
        "redirect": f"http://news.example:{port}/r",
        "ftp": f"ftp://127.0.0.1:{port}/secret?g",
    }
    site.feed(
        "/feed.xml",
        rss(*(item(key, f"Story {key}", "Short teaser.", link=url) for key, url in links.items())),
    )
    resolver = Resolver({"news.example": ["127.0.0.1"], "sneaky.example": ["127.0.0.1"]})
    settings = settings_for(tmp_path, fetch_allow_hosts=["news.example"])
    # The feed's URL names a host: the operator's trust in it does not extend to its links.
    register(settings, FeedSpec("feed", f"http://localhost:{port}/feed.xml", fulltext="always"))
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW, resolve=resolver)
    assert (counts["feeds_ok"], counts["articles_new"]) == (1, len(links))
    assert hits == [] and site.requests("/secret") == []
    assert [path for path, _ in site.log] == ["/feed.xml", "/r"]
    by_guid = {a.guid: a for a in articles(engine)}
    for key in links:
        assert by_guid[key].text_source == "summary"
        assert by_guid[key].text == f"Story {key}\n\nShort teaser."
    errors = {key: by_guid[key].fulltext_error for key in links}
    assert errors["loopback"].startswith("refused: 127.0.0.1 is a loopback address")
    assert errors["localhost"].startswith("refused: localhost resolves to")
    assert errors["private"].startswith("refused: 10.1.2.3 is a private address")
    assert errors["metadata"].startswith("refused: 169.254.169.254 is a link-local address")
    assert errors["name-to-loopback"].startswith("refused: sneaky.example resolves to 127.0.0.1")
    assert errors["redirect"].startswith("refused: 127.0.0.1 is a loopback address")
    # Normalizing drops a non-http link, so there is nothing to fetch; an IPv6 literal
    # link is mangled by normalizing (a normalize.py bug) and never fetched either.
    assert by_guid["ftp"].url is None and errors["ftp"] is None
    assert errors["ipv6"] is not None
    assert counts["fulltext_failed"] == len(links) - 1


def test_allow_list_lets_an_intranet_page_through(tmp_path: Path, engine, site: Site) -> None:
    port = port_of(site)
    serve_article(site)
    page = f"http://127.0.0.1:{port}/article"
    site.feed("/feed.xml", rss(item("a", TITLE, "Short teaser.", link=page)))
    allowed = settings_for(tmp_path, fetch_allow_hosts=["127.0.0.1"])
    register(allowed, FeedSpec("feed", f"http://localhost:{port}/feed.xml"))
    counts = ingest_feeds(engine, allowed, day=DAY, now=NOW)
    assert (counts["fulltext_ok"], counts["fulltext_failed"]) == (1, 0)
    (article,) = articles(engine)
    assert article.text_source == "fulltext" and article.fulltext_error is None
    assert len(site.requests("/article")) == 1
    # The same kind of link under the default, empty allow-list: refused, never requested.
    site.feed("/feed.xml", rss(item("b", "Other story", "Teaser.", link=page + "?b")))
    counts = ingest_feeds(engine, settings_for(tmp_path), day=DAY, now=NOW)
    assert (counts["fulltext_ok"], counts["fulltext_failed"]) == (0, 1)
    assert len(site.requests("/article")) == 1
    refused = {a.guid: a for a in articles(engine)}["b"]
    assert refused.fulltext_error.startswith("refused: 127.0.0.1 is a loopback address")


def test_a_feed_at_an_ip_address_may_link_to_its_own_origin_only(
    tmp_path: Path, engine, site: Site
) -> None:
    serve_article(site)
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other_port = other.getsockname()[1]
    other.close()
    site.feed(
        "/feed.xml",
        rss(
            item("same", TITLE, "Short teaser.", link="/article"),
            item("other", "Other port", "Teaser.", link=f"http://127.0.0.1:{other_port}/x"),
        ),
    )
    settings = settings_for(tmp_path)
    register(settings, FeedSpec("feed", site.url("/feed.xml")))  # http://127.0.0.1:port/...
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["fulltext_ok"], counts["fulltext_failed"]) == (1, 1)
    by_guid = {a.guid: a for a in articles(engine)}
    assert by_guid["same"].text_source == "fulltext"
    assert by_guid["other"].fulltext_error == (
        "refused: 127.0.0.1 is a loopback address (allow it in ESCMON_FETCH_ALLOW_HOSTS)"
    )


# --- deadlines: raw socket servers that trickle ------------------------------------


class SlowServer:
    """Answers each connection slowly: ``before`` bytes of headers, then one body byte per
    ``interval`` (or nothing, with ``trickle=False``), until the client leaves or the test
    ends. Waits on an event, so the test thread never sleeps."""

    def __init__(
        self,
        *,
        head: bytes = b"",
        trickle: bool = True,
        interval: float = 0.05,
        content_type: str = "application/rss+xml",
    ) -> None:
        self.head = head or (
            b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode() + b"\r\n"
            b"Content-Length: 1000000\r\n\r\n"
        )
        self.trickle, self.interval = trickle, interval
        self.stop = threading.Event()
        self.sent = 0
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str = "/feed.xml") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    if b"\r\n\r\n" not in conn.recv(65536):
                        continue
                    self.requests += 1
                    if self.head != b"-":
                        conn.sendall(self.head)
                    while not self.stop.wait(self.interval):
                        if self.trickle:
                            conn.sendall(b"<")
                            self.sent += 1
                except OSError:  # the client gave up and closed: serve the next one
                    continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def slow() -> Iterator[Callable[..., SlowServer]]:
    servers: list[SlowServer] = []

    def make(**kwargs: Any) -> SlowServer:
        servers.append(SlowServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_trickling_body_is_cut_off_at_the_deadline(slow) -> None:
    server = slow()
    lim = limits(read_timeout=10.0, retries=2, feed_deadline=1.0)
    with make_client(lim) as client:
        result = fetch(client, server.url(), lim)
    assert result.error == "deadline: download not finished within 1 s; aborted"
    assert result.status == 200 and result.attempts == 1  # a deadline is not retried
    assert server.sent >= 1  # bytes kept coming: no single read timed out


@pytest.mark.parametrize("head", [b"-", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"])
def test_a_silent_server_is_cut_off_at_the_deadline_not_the_read_timeout(slow, head) -> None:
    """Silent before the headers, or after them: one read would wait 30 s; the deadline is 1 s."""
    server = slow(head=head, trickle=False)
    lim = limits(read_timeout=30.0, retries=2)
    with make_client(lim) as client:
        result = fetch(client, server.url(), lim, deadline=1.0)
    assert result.error == "deadline: download not finished within 1 s; aborted"
    assert result.attempts == 1 and server.requests == 1


def test_ingest_records_a_slow_feed_and_a_slow_page_as_failures(
    tmp_path: Path, engine, site: Site, slow
) -> None:
    feed_server = slow()
    page_server = slow(content_type="text/html")
    port = port_of(site)
    site.feed("/feed.xml", rss(item("a", TITLE, "Short teaser.", link=page_server.url("/page"))))
    settings = settings_for(
        tmp_path,
        http_read_timeout=10.0,
        http_feed_deadline=1.0,
        http_page_deadline=1.0,
        fetch_allow_hosts=["127.0.0.1"],
    )
    register(
        settings,
        FeedSpec("slow", feed_server.url()),
        FeedSpec("quick", f"http://localhost:{port}/feed.xml", fulltext="always"),
    )
    counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["feeds_ok"], counts["feeds_failed"], counts["articles_new"]) == (1, 1, 1)
    assert (counts["fulltext_ok"], counts["fulltext_failed"]) == (0, 1)
    row = feed_row(engine, "slow")
    assert row.last_error == "deadline: download not finished within 1 s; aborted"
    assert row.consecutive_failures == 1
    (article,) = articles(engine)
    assert article.text_source == "summary"
    assert article.fulltext_error == "deadline: download not finished within 1 s; aborted"
    assert feed_server.sent >= 1 and page_server.sent >= 1


# --- the ingest stage deadline -----------------------------------------------------


def test_a_stage_deadline_of_zero_defers_every_feed(tmp_path: Path, engine, site, caplog) -> None:
    site.feed("/one.xml", rss(item("1", "One", "Text one.")))
    site.feed("/two.xml", rss(item("2", "Two", "Text two.")))
    settings = settings_for(tmp_path, ingest_deadline=0)
    register(settings, FeedSpec("one", site.url("/one.xml")), FeedSpec("two", site.url("/two.xml")))
    with caplog.at_level(logging.WARNING, logger="pipeline.feeds.ingest"):
        counts = ingest_feeds(engine, settings, day=DAY, now=NOW)
    assert (counts["feeds_due"], counts["feeds_deferred"]) == (2, 2)
    assert (counts["feeds_ok"], counts["feeds_failed"], counts["articles_new"]) == (0, 0, 0)
    assert site.log == []
    assert "ESCMON_INGEST_DEADLINE" in caplog.text and "2 of 2 due feeds deferred" in caplog.text
    assert "one, two" in caplog.text
    for name in ("one", "two"):  # not the feed's fault: no error, no backoff
        row = feed_row(engine, name)
        assert (row.last_error, row.consecutive_failures, row.next_attempt_at) == (None, 0, None)
    ctx = RunContext(settings=settings, engine=engine, day=DAY)
    result = run_stage(ctx, "ingest_feeds")  # the stage itself ends normally
    assert result.status == "ok" and result.counts["feeds_deferred"] == 2
    later = ingest_feeds(engine, settings_for(tmp_path), day=DAY, now=NOW)
    assert (later["feeds_ok"], later["feeds_deferred"], later["articles_new"]) == (2, 0, 2)


def test_no_page_is_fetched_after_the_stage_deadline(site: Site) -> None:
    serve_article(site)
    body = rss(item("a", TITLE, "Short teaser.", link="/article"))
    _, entries, _ = read_feed(
        body, url=site.url("/feed.xml"), headers={}, name="f", language=None, fetched_at=NOW
    )
    outcome = FeedOutcome(FeedJob(1, "f", site.url("/feed.xml")), "ok", entries=entries)
    counts = add_fulltext(
        [outcome], limits(), policy=FetchPolicy(), sleep=lambda _s: None, stage_end=time.monotonic()
    )
    assert counts == {"fulltext_ok": 0, "fulltext_failed": 0, "fulltext_skipped": 1}
    assert entries[0].fulltext_error == "not fetched: the ingest stage deadline was reached"
    assert site.log == []


def test_the_stalest_feeds_are_fetched_first(tmp_path: Path, engine, site: Site) -> None:
    """Deferred feeds keep their old fetch time, so the next run starts with them."""
    for name in ("a", "b"):
        site.feed(f"/{name}.xml", rss(item(name, name.upper(), "Text.")), etag=False)
    settings = settings_for(tmp_path)
    register(settings, FeedSpec("a", site.url("/a.xml")), FeedSpec("b", site.url("/b.xml")))
    ingest_feeds(engine, settings, day=DAY, now=NOW)
    register(settings, FeedSpec("a", site.url("/a.xml")))
    ingest_feeds(engine, settings, day=DAY, now=NOW + dt.timedelta(hours=1))  # a is fresher
    register(settings, FeedSpec("a", site.url("/a.xml")), FeedSpec("b", site.url("/b.xml")))
    site.log.clear()
    ingest_feeds(
        engine, settings_for(tmp_path, http_concurrency=1), day=DAY, now=NOW + dt.timedelta(hours=2)
    )
    assert [path for path, _ in site.log] == ["/b.xml", "/a.xml"]
