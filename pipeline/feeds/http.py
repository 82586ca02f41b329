"""HTTP for feeds and article pages: limits, a client, capped reads, retries."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pipeline.config import Settings

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
MAX_RETRY_WAIT = 30.0  # a longer Retry-After is not slept: the feed waits for a later run


def _setting_default(name: str) -> Any:
    """The default of a :class:`Settings` field: one source for the HTTP defaults."""
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class HttpLimits:
    connect_timeout: float = _setting_default("http_connect_timeout")
    read_timeout: float = _setting_default("http_read_timeout")
    max_bytes: int = _setting_default("http_max_bytes")
    max_redirects: int = _setting_default("http_max_redirects")
    retries: int = _setting_default("http_retries")
    backoff: float = _setting_default("http_backoff")
    concurrency: int = _setting_default("http_concurrency")
    user_agent: str = _setting_default("user_agent")

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
            max_bytes=settings.http_max_bytes,
            max_redirects=settings.http_max_redirects,
            retries=settings.http_retries,
            backoff=settings.http_backoff,
            concurrency=max(1, settings.http_concurrency),
            user_agent=settings.user_agent,
        )


def make_client(limits: HttpLimits) -> httpx.Client:
    """One client for a run: shared connection pool, our timeouts, redirects and User-Agent."""
    return httpx.Client(
        timeout=httpx.Timeout(
            limits.read_timeout,
            connect=limits.connect_timeout,
            pool=limits.connect_timeout + limits.read_timeout,
        ),
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        headers={"User-Agent": limits.user_agent, "Accept-Encoding": "gzip, deflate"},
        limits=httpx.Limits(max_connections=limits.concurrency * 2),
    )


@dataclass
class FetchResult:
    """One GET after retries: the body, or why there is none (``error``)."""

    url: str
    final_url: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    retry_after: float | None = None
    attempts: int = 1
    elapsed: float = 0.0
    retryable: bool = False

    @property
    def not_modified(self) -> bool:
        return self.status == 304 and self.error is None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class _TooLarge(Exception):
    pass


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge(f"body of {int(declared)} bytes exceeds the cap of {max_bytes} bytes")
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded (gzip) bytes: the cap also stops gzip bombs
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(f"body exceeds the cap of {max_bytes} bytes; download aborted")
        chunks.append(chunk)
    return b"".join(chunks)


def _fetch_once(
    client: httpx.Client, url: str, headers: dict[str, str], limits: HttpLimits
) -> FetchResult:
    result = FetchResult(url=url, final_url=url)
    try:
        with client.stream("GET", url, headers=headers) as response:
            result.final_url = str(response.url)
            result.status = response.status_code
            result.headers = {key.lower(): value for key, value in response.headers.items()}
            status = response.status_code
            if status == 304:
                return result
            if status == 429 or status >= 500:
                result.error = f"HTTP {status} {response.reason_phrase}".strip()
                result.retry_after = parse_retry_after(response.headers.get("retry-after"))
                result.retryable = True
                return result
            if not 200 <= status < 300:
                result.error = f"HTTP {status} {response.reason_phrase}".strip()
                return result
            result.body = _read_capped(response, limits.max_bytes)
    except _TooLarge as exc:
        result.error = str(exc)
    except httpx.ConnectTimeout:  # an unreachable host: retrying now rarely helps
        result.error = f"timeout: no connect within {limits.connect_timeout:g} s"
    except httpx.TimeoutException as exc:
        kind = type(exc).__name__.replace("Timeout", "").lower() or "request"
        result.error = f"timeout: no {kind} within {limits.read_timeout:g} s"
        result.retryable = True
    except httpx.TooManyRedirects:
        result.error = f"too many redirects (more than {limits.max_redirects})"
    except httpx.ConnectError as exc:
        result.error = f"connection failed: {exc}"
    except httpx.RemoteProtocolError as exc:
        result.error = f"protocol error: {exc}"
        result.retryable = True
    except httpx.DecodingError as exc:
        result.error = f"undecodable body (content-encoding): {exc}"
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        result.error = f"invalid URL: {exc}"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def fetch(
    client: httpx.Client,
    url: str,
    limits: HttpLimits,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = FEED_ACCEPT,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """GET ``url`` with retries on read timeouts, 429 and 5xx (backoff, Retry-After honoured).

    Never raises for network or HTTP problems: they come back as ``error``.
    Refused connections, DNS failures and connect timeouts are not retried, so
    a run without network finishes quickly.
    """
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    started = time.perf_counter()
    result = FetchResult(url=url, final_url=url)
    for attempt in range(limits.retries + 1):
        result = _fetch_once(client, url, headers, limits)
        result.attempts = attempt + 1
        if not result.retryable or attempt == limits.retries:
            break
        wait = result.retry_after
        if wait is None:
            wait = limits.backoff * 2**attempt
        if wait > MAX_RETRY_WAIT:
            break
        sleep(wait)
    result.elapsed = time.perf_counter() - started
    return result
