"""The console's request handlers: the pages and the talk WebSocket (``server.py`` serves them).

Pages are rendered on the server (``pages.py``); the only scripts are the talk page's, in
``static/``. Source calls (boto3, urllib) run in worker threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from calls_api.filters import FilterError, normalise_number, parse_filters
from mapokezi.outcomes import CallOutcome
from mapokezi.profiles import Profile, ProfileError, parse_profile
from mapokezi_cli.console import pages
from mapokezi_cli.console.html import esc, outcome_of, page
from mapokezi_cli.console.overview import summarise
from mapokezi_cli.console.platform import SautikitLookup
from mapokezi_cli.console.pricing import ModelPrices
from mapokezi_cli.console.profile_upload import read_profile_upload
from mapokezi_cli.console.sources import (
    SCAN_LIMIT,
    ApiSource,
    CallQuery,
    SourceError,
    TableSource,
    recent_calls,
)
from mapokezi_cli.console.talk import BrowserLink, TalkSettings, place_call, talk_options
from mapokezi_cli.main import format_learned

log = logging.getLogger("mapokezi.console")

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
    #: Sautikit itself (recordings, the numbers it routes); None without an API key.
    sautikit: SautikitLookup | None = None


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
        if self.settings.sautikit is not None:
            recording = await self._run(self.settings.sautikit.recording, call_id)
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
        platform: dict[str, Any] = {}
        if self.settings.sautikit is not None:
            platform = await self._run(self.settings.sautikit.numbers)
        for entry in profiles:
            entry["learned"] = await self._learned(entry.get("number"))
            if isinstance(entry.get("profile"), Profile):
                # What the transfers learned, as `mapokezi profile show` prints it.
                strategy = entry["profile"].handoff.strategy
                for line in format_learned(entry.get("platform"), strategy).splitlines():
                    key, _, value = line.partition(": ")
                    entry["learned"][key] = value
            entry["sautikit"] = _platform_view(platform, entry.get("number"))
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


def _platform_view(platform: dict[str, Any], number: Any) -> str | None:
    """One line on how Sautikit has the number; None when Sautikit was not asked."""
    if not platform:
        return None
    if "error" in platform:
        return str(platform["error"])
    found = platform.get("numbers", {}).get(number)
    if found is None:
        return "not a number of this Sautikit workspace"
    url = found.get("voice_callback_url") or found.get("routing_url") or found.get("voice_url")
    status = found.get("status") or "owned"
    return f"{status}; voice webhook: {url}" if url else f"{status}; not routed to a webhook"


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
