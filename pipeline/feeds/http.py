"""HTTP for feeds and article pages: limits, a client, capped reads, retries.

Two guards sit under httpx, in the network backend of every client from
:func:`make_client`: a total deadline per download (each connect, read and
write waits at most the time left; the body loop checks it between chunks),
and, for clients made with a :class:`FetchPolicy` (article pages, whose URLs
come from feed content), an address check at each new connection: the host is
resolved once, every address is checked (public only, unless allow-listed),
and the socket goes to a checked address, so DNS rebinding cannot switch it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
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
    feed_deadline: float = _setting_default("http_feed_deadline")
    page_deadline: float = _setting_default("http_page_deadline")

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
            feed_deadline=settings.http_feed_deadline,
            page_deadline=settings.http_page_deadline,
        )


# --- the outbound fetch policy (article pages) -------------------------------------

Resolver = Callable[[str], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
ALLOW_SETTING = "ESCMON_FETCH_ALLOW_HOSTS"


class FetchRefused(Exception):
    """The fetch policy refused a URL or an address: nothing was sent to it."""


class DeadlineExceeded(Exception):
    """The download's total deadline passed (raised by the guarded network backend)."""


def system_resolve(host: str) -> list[str]:
    """The host's addresses from the system resolver, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public address (``"a loopback address"``), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:  # an IPv4 address inside IPv6: judge the IPv4 one
            problem = address_problem(inner)
            return f"{problem} ({inner} inside IPv6)" if problem else None
        if address.is_site_local:
            return "a site-local address"
    checks = (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a reserved", address.is_reserved),
        ("a private", address.is_private),
        ("a non-public", not address.is_global),
    )
    for kind, hit in checks:
        if hit:
            return f"{kind} address"
    return None


def parse_allow_list(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split allow-list entries into host names and IP networks (an address is a /32 or /128)."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().strip("[]").rstrip(".").lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry)
    return frozenset(hosts), tuple(networks)


def _origin(url: str) -> tuple[str, int] | None:
    """``(address, port)`` of a URL whose host is an IP address; None for a host name."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return None
    address = _ip(parts.hostname or "")
    return (str(address), port) if address is not None else None


@dataclass(frozen=True)
class FetchPolicy:
    """Where URLs taken from feed content may be fetched from.

    http and https only; every address a host resolves to must be public
    (:func:`address_problem`) unless the host name or the address is on the
    allow-list (``ESCMON_FETCH_ALLOW_HOSTS``). ``resolve`` maps a host name to
    its addresses (the system resolver by default; a test passes its own).
    """

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    resolve: Resolver = system_resolve

    @classmethod
    def from_settings(cls, settings: Settings, resolve: Resolver | None = None) -> FetchPolicy:
        hosts, networks = parse_allow_list(settings.fetch_allow_hosts)
        return cls(hosts, networks, resolve or system_resolve)

    def _allowed(
        self, address: IPAddress, port: int, trusted: tuple[str, int] | None
    ) -> str | None:
        """Why a connection to ``address`` is refused, or None when it may go ahead."""
        if any(address in network for network in self.allow_networks):
            return None
        if trusted is not None and trusted == (str(address), port):
            return None  # the registered feed's own IP origin: the operator chose it
        return address_problem(address)

    def check_request(self, url: httpx.URL, trusted: tuple[str, int] | None = None) -> None:
        """Refuse a URL before it is sent: its scheme, and its host when that is an address.

        Runs for every request, redirect hops included (an httpx request hook).
        Host names are checked when their connection is opened
        (:meth:`addresses`); addresses here as well, because a pooled connection
        to an address may have been opened for another entry's trusted origin.
        """
        if url.scheme not in ("http", "https"):
            if not url.scheme:  # httpx reads file:///x as a relative URL: no scheme, no host
                raise FetchRefused("only http and https URLs with a host are fetched")
            raise FetchRefused(f"only http and https URLs are fetched, not {url.scheme}:")
        address = _ip(url.host)
        if address is not None:
            problem = self._allowed(
                address, url.port or (443 if url.scheme == "https" else 80), trusted
            )
            if problem:
                raise FetchRefused(f"{address} is {problem} (allow it in {ALLOW_SETTING})")

    def addresses(self, host: str, port: int, trusted: tuple[str, int] | None = None) -> list[str]:
        """The checked addresses a connection to ``host`` may use, resolved once.

        Raises :class:`FetchRefused` when none may be used, and a connect error
        when the name does not resolve.
        """
        name = host.strip("[]").rstrip(".").lower()
        literal = _ip(name)
        if literal is not None:
            found = [literal]
        else:
            try:
                found = [a for a in (_ip(str(v)) for v in self.resolve(name)) if a is not None]
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {name}: {exc}") from exc
            if not found:
                raise httpcore.ConnectError(f"cannot resolve {name}: no addresses")
        if name in self.allow_hosts:
            return [str(address) for address in found]
        allowed: list[tuple[IPAddress, str | None]] = []
        refused: list[tuple[IPAddress, str | None]] = []
        # The same-origin exemption is for a feed registered at an address: never for names,
        # whose pooled connections a later page of another feed could reuse.
        trusted_here = trusted if literal is not None else None
        for address in found:
            problem = self._allowed(address, port, trusted_here)
            (refused if problem else allowed).append((address, problem))
        if not allowed:
            address, problem = refused[0]
            where = f"{address} is" if literal is not None else f"{name} resolves to {address},"
            raise FetchRefused(f"{where} {problem} (allow it in {ALLOW_SETTING})")
        return [str(address) for address, _ in allowed]


# --- the per-download deadline and the guarded network backend ----------------------


@dataclass(frozen=True)
class _Scope:
    """The download in progress in this thread (read by the backend and the request hook)."""

    end: float  # time.monotonic() by which the download must be done
    trusted: tuple[str, int] | None = None


_SCOPE: ContextVar[_Scope | None] = ContextVar("escmon_fetch_scope", default=None)


def _clamp(timeout: float | None) -> tuple[float | None, bool]:
    """``timeout`` cut to the time left of this thread's download; and whether it was cut."""
    scope = _SCOPE.get()
    if scope is None:
        return timeout, False
    left = scope.end - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


class _GuardedStream(httpcore.NetworkStream):
    """A socket stream whose every wait ends at the download's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout, cut = _clamp(timeout)
        try:
            return self._inner.read(max_bytes, timeout)
        except httpcore.ReadTimeout:
            if cut:
                raise DeadlineExceeded from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        timeout, cut = _clamp(timeout)
        try:
            self._inner.write(buffer, timeout)
        except httpcore.WriteTimeout:
            if cut:
                raise DeadlineExceeded from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout, cut = _clamp(timeout)
        try:  # server_hostname is the URL's host name: SNI and the certificate check use it
            return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))
        except httpcore.ConnectTimeout:
            if cut:
                raise DeadlineExceeded from None
            raise

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend with the deadline and, given a policy, the address check."""

    def __init__(self, policy: FetchPolicy | None) -> None:
        self._inner = httpcore.SyncBackend()
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        targets = [host]
        if self._policy is not None:
            scope = _SCOPE.get()
            targets = self._policy.addresses(host, port, scope.trusted if scope else None)
        error: httpcore.ConnectError | None = None
        for target in targets:  # only checked addresses: the name is not resolved again
            clamped, cut = _clamp(timeout)
            try:
                stream = self._inner.connect_tcp(
                    target, port, clamped, local_address, socket_options
                )
            except httpcore.ConnectTimeout:
                if cut:
                    raise DeadlineExceeded from None
                raise
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _GuardedStream(stream)
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for feeds or pages")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, limits: httpx.Limits, policy: FetchPolicy | None) -> None:
        super().__init__(limits=limits)
        # httpx takes no network backend: the pool it builds, on ours instead.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy),
        )


def make_client(limits: HttpLimits, policy: FetchPolicy | None = None) -> httpx.Client:
    """One client for a run: shared connection pool, our timeouts, redirects and User-Agent.

    With ``policy`` (article pages) every request, redirect hops included, and
    every new connection is checked, and proxy variables are ignored: a proxy
    would resolve the names itself. Without it (feeds, registered by the
    operator), an ``HTTP(S)_PROXY`` from the environment is used as before;
    the deadline then holds between chunks only.
    """
    import urllib.request  # only to see whether the environment names a proxy

    pool = httpx.Limits(max_connections=limits.concurrency * 2)
    proxied = policy is None and any(
        key in ("http", "https", "all") for key in urllib.request.getproxies()
    )
    hooks: dict[str, list[Callable[..., Any]]] = {}
    if policy is not None:

        def check(request: httpx.Request) -> None:
            scope = _SCOPE.get()
            policy.check_request(request.url, scope.trusted if scope else None)

        hooks["request"] = [check]
    return httpx.Client(
        timeout=httpx.Timeout(
            limits.read_timeout,
            connect=limits.connect_timeout,
            pool=limits.connect_timeout + limits.read_timeout,
        ),
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        headers={"User-Agent": limits.user_agent, "Accept-Encoding": "gzip, deflate"},
        limits=pool,
        transport=None if proxied else _GuardedTransport(pool, policy),
        trust_env=policy is None,
        event_hooks=hooks,
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


def _read_capped(response: httpx.Response, max_bytes: int, end: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge(f"body of {int(declared)} bytes exceeds the cap of {max_bytes} bytes")
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded (gzip) bytes: the cap also stops gzip bombs
        if time.monotonic() > end:  # a trickle: every read is quick, the whole is too slow
            raise DeadlineExceeded
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(f"body exceeds the cap of {max_bytes} bytes; download aborted")
        chunks.append(chunk)
    return b"".join(chunks)


def _fetch_once(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    limits: HttpLimits,
    *,
    end: float,
    deadline: float,
) -> FetchResult:
    result = FetchResult(url=url, final_url=url)
    late = f"deadline: download not finished within {deadline:g} s; aborted"
    left = end - time.monotonic()
    if left <= 0:
        result.error = late
        return result
    timeout = httpx.Timeout(
        min(limits.read_timeout, left), connect=min(limits.connect_timeout, left), pool=left
    )
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as response:
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
            result.body = _read_capped(response, limits.max_bytes, end)
    except _TooLarge as exc:
        result.error = str(exc)
    except DeadlineExceeded:
        result.error = late
    except FetchRefused as exc:
        result.error = f"refused: {exc}"
    except httpx.TimeoutException as exc:
        if time.monotonic() >= end:  # httpx's own timeout, cut to the time left
            result.error = late
        elif isinstance(exc, httpx.ConnectTimeout):  # unreachable: retrying now rarely helps
            result.error = f"timeout: no connect within {limits.connect_timeout:g} s"
        else:
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
    deadline: float | None = None,
    trusted_origin: str | None = None,
) -> FetchResult:
    """GET ``url`` with retries on read timeouts, 429 and 5xx (backoff, Retry-After honoured).

    Never raises for network or HTTP problems: they come back as ``error``.
    Refused connections, DNS failures and connect timeouts are not retried, so
    a run without network finishes quickly. ``deadline`` (seconds, default
    ``limits.feed_deadline``) bounds the whole call, retries and waits
    included. ``trusted_origin`` is the URL of the feed an article link came
    from: when its host is an IP address, the client's policy lets that
    address and port through (the operator registered it).
    """
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = limits.feed_deadline if deadline is None else deadline
    started = time.monotonic()
    end = started + deadline
    trusted = _origin(trusted_origin) if trusted_origin else None
    token = _SCOPE.set(_Scope(end, trusted))
    result = FetchResult(url=url, final_url=url)
    try:
        for attempt in range(limits.retries + 1):
            result = _fetch_once(client, url, headers, limits, end=end, deadline=deadline)
            result.attempts = attempt + 1
            if not result.retryable or attempt == limits.retries:
                break
            wait = result.retry_after
            if wait is None:
                wait = limits.backoff * 2**attempt
            if wait > MAX_RETRY_WAIT or time.monotonic() + wait >= end:
                break
            sleep(wait)
    finally:
        _SCOPE.reset(token)
    result.elapsed = time.monotonic() - started
    return result
