"""Serving the console: the aiohttp application, its guards, and a server on its own thread.

Every response carries a Content-Security-Policy that allows no inline script; requests that
another web page could forge are refused (``_request_guard``); a source that cannot be read
gives a page saying why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from mapokezi import config
from mapokezi_cli.console.app import Console, ConsoleSettings
from mapokezi_cli.console.html import esc, page
from mapokezi_cli.console.sources import SourceError

log = logging.getLogger("mapokezi.console")

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' https: http:; connect-src 'self'"
)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _forbidden(reason: str) -> web.Response:
    return web.Response(status=403, text=f"forbidden: {reason}\n")


def _request_guard(loopback_only: bool) -> Any:
    """Refuse what a web page elsewhere could make the operator's browser do.

    - Host: on loopback only loopback names are served, so a DNS-rebinding page cannot read
      the console under its own name.
    - Origin: an upload (POST) or a talk socket must come from the console's own pages; any
      site can otherwise submit a form to 127.0.0.1 (and overwrite a profile) or open a
      WebSocket to it (and place calls).
    """

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0] if request.host else ""
        if loopback_only and host not in LOOPBACK_NAMES:
            return _forbidden(f"unexpected Host {request.host!r}")
        changes = request.method not in ("GET", "HEAD") or request.path == "/talk/ws"
        if changes:
            origin = request.headers.get("Origin", "")
            if origin != f"{request.scheme}://{request.host}":
                return _forbidden("the request did not come from the console's own page")
        return await handler(request)

    return guard


@web.middleware
async def _security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with the
    # console's own form posts, which the request guard would then refuse.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def _source_errors(settings: ConsoleSettings) -> Any:
    """A page that says why the data could not be read, instead of a bare 500."""

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ClientError, BotoCoreError, SourceError, config.ConfigError) as exc:
            log.warning("%s %s: %s", request.method, request.path, exc)
            body = (
                f'<p class="error">The console could not read {esc(settings.source.description)}:'
                f" {esc(exc)}</p><p>Check <code>CALLS_TABLE</code>, your AWS credentials and "
                "region (or the --api URL).</p>"
            )
            html = page("Cannot read the calls", body, here="", source="", show_messages=False)
            return web.Response(text=html, content_type="text/html", status=502)

    return errors


def build_app(settings: ConsoleSettings, *, loopback_only: bool = True) -> web.Application:
    """The aiohttp application (``loopback_only``: serve only loopback host names)."""
    console = Console(settings)
    app = web.Application(
        middlewares=[_security_headers, _request_guard(loopback_only), _source_errors(settings)],
        client_max_size=1 << 20,
    )
    app.add_routes(
        [
            web.get("/", console.root),
            web.get("/healthz", console.healthz),
            web.get("/calls", console.calls),
            web.get("/calls/{call_id}", console.call),
            web.get("/messages", console.messages),
            web.get("/numbers", console.numbers),
            web.post("/numbers", console.numbers),
            web.get("/overview", console.overview),
            web.get("/talk", console.talk_page),
            web.get("/talk/ws", console.talk_socket),
            web.static("/static", STATIC),
        ]
    )
    return app


class ConsoleServer:
    """The console on its own thread and event loop (``make run``, tests)."""

    def __init__(self, settings: ConsoleSettings, host: str = "127.0.0.1", port: int = 8099):
        self.settings = settings
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ConsoleServer:
        """Listen; returns once the port is bound (raises OSError when it is taken)."""
        ready: asyncio.Future[None] | None = None
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            nonlocal ready
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=serve, name="mapokezi-console", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    async def _start_site(self) -> None:
        loopback = self.host in LOOPBACK_NAMES
        # A talk call still open when the console stops gets a few seconds, not a minute.
        self._runner = web.AppRunner(
            build_app(self.settings, loopback_only=loopback), access_log=None, shutdown_timeout=5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server  # the bound port, when asked for any
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop listening and close open sockets."""
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
        self._loop = self._thread = None
