"""A real local HTTP server whose routes each test sets (feeds, article pages, faults)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


class Site:
    """A threaded HTTP server on 127.0.0.1 whose routes each test sets."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.routes: dict[str, Callable[[Request], Response]] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)

    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            self.log.append((request.path, dict(request.headers)))
        handler = self.routes.get(request.path)
        return handler(request) if handler else Response("not found", status=404)

    def reset(self) -> None:
        self.routes.clear()
        self.log.clear()

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def requests(self, path: str) -> list[dict[str, str]]:
        return [headers for logged, headers in self.log if logged == path]

    def feed(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        etag: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve ``body``; with ``etag``, answer a matching If-None-Match with 304."""
        tag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'

        def handler(request: Request) -> Response:
            if etag and request.headers.get("If-None-Match") == tag:
                return Response(status=304, headers={"ETag": tag})
            extra = {"ETag": tag, "Last-Modified": "Sat, 10 Aug 2024 08:00:00 GMT"} if etag else {}
            return Response(
                body, headers={"Content-Type": content_type, **extra, **(headers or {})}
            )

        self.routes[path] = handler

    def sequence(self, path: str, *responses: Callable[[], Response]) -> None:
        """Answer the n-th request with the n-th response (the last one repeats)."""
        count = iter(range(10**6))

        def handler(_request: Request) -> Response:
            return responses[min(next(count), len(responses) - 1)]()

        self.routes[path] = handler
