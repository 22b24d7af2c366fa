"""The console's web app (aiohttp): routes, the talk WebSocket, and a server to run it.

Pages are rendered on the server (``pages.py``); the only scripts are the talk page's and the
small helpers in ``static/``, served from this origin under a Content-Security-Policy that
allows no inline script. Source calls (boto3, urllib) run in worker threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from botocore.exceptions import BotoCoreError, ClientError

from calls_api.filters import FilterError, normalise_number, parse_filters
from mapokezi import config
from mapokezi.outcomes import CallOutcome
from mapokezi.profiles import ProfileError, parse_profile
from mapokezi_cli.console import pages
from mapokezi_cli.console.html import esc, outcome_of, page
from mapokezi_cli.console.overview import summarise
from mapokezi_cli.console.pricing import ModelPrices
from mapokezi_cli.console.profile_upload import read_profile_upload
from mapokezi_cli.console.recordings import RecordingLookup
from mapokezi_cli.console.sources import (
    SCAN_LIMIT,
    ApiSource,
    CallQuery,
    SourceError,
    TableSource,
    recent_calls,
)
from mapokezi_cli.console.talk import BrowserLink, TalkSettings, place_call, talk_options

log = logging.getLogger("mapokezi.console")

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' https: http:; connect-src 'self'"
)
#: Seconds the "does any call carry a message" answer is reused (it decides a nav link).
MESSAGES_CHECK_SECONDS = 120.0
#: Days the overview covers unless ``?days=`` says otherwise.
OVERVIEW_DAYS = 14


@dataclass
class ConsoleSettings:
    """What the console reads and where its talk page calls."""

    source: TableSource | ApiSource
    prices: ModelPrices = field(default_factory=ModelPrices)
    talk: TalkSettings | None = None
    recordings: RecordingLookup | None = None


class Console:
    """The request handlers, bound to one :class:`ConsoleSettings`."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self._messages_checked: tuple[float, bool] = (0.0, False)

    # -- helpers ---------------------------------------------------------------------------

    async def _run(self, func: Any, *args: Any) -> Any:
        return await asyncio.to_thread(func, *args)

    async def _has_messages(self) -> bool:
        checked_at, answer = self._messages_checked
        if time.monotonic() - checked_at < MESSAGES_CHECK_SECONDS:
            return answer
        try:
            calls = await self._run(
                recent_calls, self.settings.source, CallQuery(parse_filters({}).query_kwargs(), {})
            )
        except Exception:  # the page still renders; its own fetch reports the failure
            log.exception("checking for messages failed")
            calls = []
        answer = any(isinstance(c.get("message"), dict) for c in calls)
        self._messages_checked = (time.monotonic(), answer)
        return answer

    async def _page(self, title: str, body: str, here: str, status: int = 200) -> web.Response:
        html = page(
            title,
            body,
            here=here,
            source=self.settings.source.description,
            show_messages=await self._has_messages(),
        )
        return web.Response(text=html, content_type="text/html", status=status)

    # -- pages -----------------------------------------------------------------------------

    async def calls(self, request: web.Request) -> web.Response:
        """``GET /calls``: filters, outcome badges, cursor pagination."""
        params = {k: v for k, v in request.query.items() if v}
        outcome = params.pop("outcome", None)
        shown = {**params, **({"outcome": outcome} if outcome else {})}
        try:
            if outcome and outcome not in {o.value for o in CallOutcome}:
                raise FilterError(f"outcome: {outcome!r} is not a known outcome")
            filters = parse_filters(params)
            query = CallQuery(filters.query_kwargs(), filters.query_params())
            calls, cursor = await self._run(self.settings.source.list_calls, query)
        except (FilterError, SourceError) as exc:
            body = pages.render_calls([], filters=shown, next_cursor=None, error=str(exc))
            return await self._page("Calls", body, "/calls", status=400)
        if outcome:
            calls = [c for c in calls if outcome_of(c).value == outcome]
        body = pages.render_calls(calls, filters=shown, next_cursor=cursor)
        return await self._page("Calls", body, "/calls")

    async def call(self, request: web.Request) -> web.Response:
        """``GET /calls/{id}``: one call in full."""
        call_id = request.match_info["call_id"]
        try:
            record = await self._run(self.settings.source.call, call_id)
        except SourceError as exc:
            return await self._page("Call", f'<p class="error">{esc(exc)}</p>', "/calls", 502)
        if record is None:
            body = f'<p class="error">No call {esc(call_id)}.</p>'
            return await self._page("Call not found", body, "/calls", status=404)
        recording = None
        if self.settings.recordings is not None:
            recording = await self._run(self.settings.recordings.lookup, call_id)
        body = pages.render_call(record, prices=self.settings.prices, recording=recording)
        return await self._page(f"Call from {record.get('from', '?')}", body, "/calls")

    async def messages(self, _request: web.Request) -> web.Response:
        """``GET /messages``: messages taken, newest first."""
        calls = await self._run(
            recent_calls, self.settings.source, CallQuery(parse_filters({}).query_kwargs(), {})
        )
        return await self._page("Messages", pages.render_messages(calls), "/messages")

    async def numbers(self, request: web.Request) -> web.Response:
        """``GET /numbers`` and ``POST /numbers`` (profile upload)."""
        errors: list[str] = []
        uploaded = None
        number_value = ""
        source = self.settings.source
        status = 200
        if request.method == "POST":
            number_value, data, errors = await read_profile_upload(request)
            if not errors:
                try:
                    profile = parse_profile(data, number=normalise_number("number", number_value))
                    await self._run(source.put_profile, profile)
                    uploaded = profile.number
                except (ProfileError, FilterError, SourceError) as exc:
                    errors = getattr(exc, "errors", None) or [str(exc)]
            status = 400 if errors else 200
        profiles = await self._run(source.profiles)
        for entry in profiles:
            entry["learned"] = await self._learned(entry.get("number"))
        body = pages.render_numbers(
            profiles,
            can_edit=source.can_edit_profiles,
            upload_errors=errors,
            uploaded=uploaded,
            number_value=number_value,
        )
        return await self._page("Numbers", body, "/numbers", status=status)

    async def _learned(self, number: Any) -> dict[str, Any]:
        """What the number's recent calls show: count, outcomes, last call."""
        if not isinstance(number, str):
            return {}
        filters = parse_filters({"number": number, "limit": "100"})
        calls, _ = await self._run(
            self.settings.source.list_calls,
            CallQuery(filters.query_kwargs(), filters.query_params()),
        )
        if not calls:
            return {}
        outcomes: dict[str, int] = {}
        for c in calls:
            key = outcome_of(c).value.replace("_", " ")
            outcomes[key] = outcomes.get(key, 0) + 1
        return {
            "recent calls": len(calls),
            "outcomes": ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())),
            "last call": calls[0].get("started_at"),
            "callers": len({c.get("from") for c in calls}),
        }

    async def overview(self, request: web.Request) -> web.Response:
        """``GET /overview``: figures and charts over the last ``days`` days."""
        try:
            days = max(1, min(366, int(request.query.get("days", OVERVIEW_DAYS))))
        except ValueError:
            days = OVERVIEW_DAYS
        today = datetime.now(UTC).date()
        first_day = today - timedelta(days=days - 1)
        filters = parse_filters({"since": first_day.isoformat()})
        calls = await self._run(
            recent_calls,
            self.settings.source,
            CallQuery(filters.query_kwargs(), filters.query_params()),
        )
        figures = summarise(
            calls,
            self.settings.prices,
            first_day=first_day,
            last_day=today,
            truncated=len(calls) >= SCAN_LIMIT,
        )
        body = f'<p class="muted">The last {days} days (UTC).</p>' + pages.render_overview(figures)
        return await self._page("Overview", body, "/overview")

    async def talk_page(self, _request: web.Request) -> web.Response:
        """``GET /talk``: the microphone page."""
        talk = self.settings.talk
        if talk is None:
            body = (
                '<p class="muted">No voice webhook to call: run the console with --local, '
                "or with --voice-url (or --api) for a deployed stack.</p>"
            )
            return await self._page("Talk to it", body, "/talk")
        body = (
            f'<div class="card"><p>Calls <code>{esc(talk.voice_url)}</code> as Sautikit would, '
            "with this browser's microphone as the caller's phone.</p>"
            f'<label>Number <input id="to" value="{esc(talk.default_number)}"></label> '
            '<label>Caller id <input id="from" value="+254712345678"></label> '
            '<button id="call">Call</button> <button id="hangup" disabled>Hang up</button>'
            '<p>State: <b id="state">idle</b> · sent <span id="sent">0</span> frames · '
            'heard <span id="heard">0</span> bytes · killAudio <span id="kills">0</span></p>'
            '<p id="result"></p></div><div class="card"><h2>Call log</h2>'
            '<ol id="log"></ol></div><script src="/static/talk.js" type="module"></script>'
        )
        return await self._page("Talk to it", body, "/talk")

    async def talk_socket(self, request: web.Request) -> web.StreamResponse:
        """``GET /talk/ws``: one browser call."""
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        if self.settings.talk is None:
            await ws.send_json({"type": "ended", "ok": False, "errors": ["no voice webhook"]})
            await ws.close()
            return ws
        link = BrowserLink(ws.send_json, ws.send_bytes)
        call: asyncio.Task[dict[str, Any]] | None = None
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    link.caller_audio(message.data)
                elif message.type == WSMsgType.TEXT:
                    command = _json(message.data)
                    if command.get("type") == "start" and call is None:
                        try:
                            options = talk_options(self.settings.talk, command)
                        except ValueError as exc:
                            await ws.send_json({"type": "ended", "ok": False, "errors": [str(exc)]})
                            break
                        call = asyncio.create_task(self._talk(ws, options, link))
                    elif command.get("type") == "hangup":
                        link.hang_up()
        finally:
            link.hang_up()  # a closed page is a caller who hung up
            if call is not None:
                await call
            await ws.close()
        return ws

    async def _talk(self, ws: web.WebSocketResponse, options: Any, link: BrowserLink) -> dict:
        try:
            ended = await place_call(options, link)
        except Exception as exc:  # the page must hear why, not hang
            log.exception("browser call failed")
            ended = {"type": "ended", "ok": False, "errors": [f"{type(exc).__name__}: {exc}"]}
        self._messages_checked = (0.0, False)
        if not ws.closed:
            await ws.send_json(ended)
            await ws.close()
        return ended

    async def root(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound("/calls")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "source": self.settings.source.description})


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


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
