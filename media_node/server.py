"""The media node's WebSocket server: health probes, media-socket admission, calls, drain.

``GET /healthz`` answers 200 while the process lives; ``GET /ready`` answers 200, or 503 while
draining or at ``MAX_CALLS``. ``/audio`` is Sautikit's media socket. Every check happens in
``process_request``, before the upgrade completes and before any model session is opened:
subprotocol (``audio.drachtio.org`` or ``audio.jambonz.org``), room on this node, the stream
token's signature and expiry, a single-use claim in the call record, and the profile. Only then
does the upgrade finish and a call session run. A failing session is logged and never takes the
server down.

Every media socket is held to ``NodeSettings.limits`` (`media_node.socket_limits`): websockets'
own limits (message size, frame queue, write buffer, handshake and close timeouts, keepalive)
and a limiter in front of every ``recv`` (`media_node.guarded_connection`); a periodic check
closes sockets that send no frames at all and aborts those whose peer stopped reading. A socket
closed that way ends its call like a hangup, and the voice webhook, finding no handoff pending
on StreamStopped, hands a caller who is still there to the front desk.

Shutdown (:meth:`MediaServer.shutdown`) drains: new calls are refused with 503 while live ones
continue for up to ``DRAIN_SECONDS``; sessions still running are then asked to hand their
callers to the front desk; the listener closes without cutting connections
(``Server.close(close_connections=False)``), record writes still being retried get a last
bounded wait, and a final heartbeat says the node is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from mapokezi import store, tokens
from mapokezi.profiles import Profile
from media_node import records
from media_node.call import CallSession
from media_node.context import NodeContext, gemini_factory, openai_factory
from media_node.guarded_connection import GuardedConnection
from media_node.heartbeat import ActiveCallsMetric, Heartbeat, write_line
from media_node.models.base import ModelFactory
from media_node.node_settings import NodeSettings
from media_node.protection import TaskProtection
from media_node.records import BackgroundWrites
from media_node.sautikit_protocol import SUBPROTOCOLS

logger = logging.getLogger(__name__)

AUDIO_PATH = "/audio"
#: Time given to sessions, once asked to drain, to tell callers and hand them over.
DRAIN_GRACE_SECONDS = 10.0
#: The same after a second stop signal.
HURRIED_GRACE_SECONDS = 3.0
#: Upper bound on waiting for connections to close once sessions have ended or drained.
CLOSE_WAIT_SECONDS = 5.0
#: Upper bound on waiting, at shutdown, for record writes still being retried.
RECORD_WRITES_WAIT_SECONDS = 15.0


class CallSessionLike(Protocol):
    """What the server needs from a call session (see ``media_node.call.CallSession``)."""

    async def run(self) -> str:
        """Run the call to its end and return the media outcome."""
        ...

    async def drain(self, deadline: float) -> None:
        """Hand the caller to the front desk before ``deadline`` (``time.monotonic()`` clock)."""
        ...


#: Builds the session for an admitted socket: ``(websocket, call_id, profile) -> session``.
SessionFactory = Callable[[ServerConnection, str, Profile], CallSessionLike]


def default_session_factory(node: NodeSettings, table: Any) -> SessionFactory:
    """The production factory: a ``CallSession`` per socket, sharing one ``NodeContext``."""
    settings = node.settings
    providers: dict[str, ModelFactory | str] = {
        # A local model needs no key (see NodeSettings.unavailable_reason).
        "openai": node.unavailable_reason("openai")
        or openai_factory(
            settings.openai_realtime_url,
            settings.openai_realtime_model,
            node.openai_api_key or "",
        ),
        "gemini": node.unavailable_reason("gemini")
        or gemini_factory(node.gemini_live_url, node.gemini_model, node.gemini_api_key or ""),
    }
    for provider, factory in providers.items():
        if isinstance(factory, str):
            logger.warning("calls of %s profiles will go to the front desk: %s", provider, factory)
    context = NodeContext.for_providers(
        node_id=node.node_id,
        settings=settings,
        table=table,
        providers=providers,
        pacer_lead_ms=node.pacer_lead_ms,
        uplink_append_ms=node.uplink_append_ms,
        frames_per_write=node.frames_per_write,
    )

    def build(websocket: ServerConnection, call_id: str, profile: Profile) -> CallSessionLike:
        return CallSession(websocket, call_id=call_id, profile=profile, node=context)

    return build


class Refused(Exception):
    """An upgrade refused with an HTTP status, a short reason code and a message."""

    def __init__(
        self, status: HTTPStatus, reason: str, message: str, call_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.call_id = call_id


@dataclass
class LiveCall:
    """A media socket admitted by ``process_request``, and later its running session."""

    call_id: str
    profile: Profile
    admitted_at: float
    session: CallSessionLike | None = None
    task: asyncio.Task[Any] | None = field(default=None, repr=False)


def offered_subprotocols(headers: Headers) -> list[str]:
    """Subprotocols listed in every ``Sec-WebSocket-Protocol`` header, in order."""
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        offered.extend(item.strip() for item in value.split(",") if item.strip())
    return offered


def is_websocket_upgrade(headers: Headers) -> bool:
    """Whether the request asks to upgrade to WebSocket."""
    upgrade = ",".join(headers.get_all("Upgrade")).lower()
    return "websocket" in upgrade


class MediaServer:
    """The media node's server; one per process.

    Args:
        node: the node's settings (host, port, MAX_CALLS, drain and heartbeat timings, ...).
        table: the calls table (boto3 Table resource).
        session_factory: builds a call session for an admitted socket.
        protection: ECS task scale-in protection (default: from ``node.ecs_agent_uri``).
        emit_metric: where ActiveCalls EMF documents go (default: a line on stdout).
        record_writes: record writes retried in the background, awaited (within a bound) at
            shutdown (default: the node-wide ones of ``media_node.records``).
    """

    def __init__(
        self,
        node: NodeSettings,
        table: Any,
        session_factory: SessionFactory,
        *,
        protection: TaskProtection | None = None,
        emit_metric: Callable[[dict[str, Any]], None] = write_line,
        record_writes: BackgroundWrites | None = None,
    ) -> None:
        self.node = node
        self.table = table
        self.session_factory = session_factory
        self.record_writes = record_writes if record_writes is not None else records.BACKGROUND
        self.protection = protection or TaskProtection(
            node.ecs_agent_uri, node.task_protection_minutes
        )
        self.heartbeat = Heartbeat(
            table,
            node.node_id,
            capacity=node.max_calls,
            active_calls=lambda: self.active_calls,
            draining=lambda: self.draining,
            interval=node.heartbeat_interval_seconds,
            ttl_seconds=node.heartbeat_ttl_seconds,
        )
        self.metric = ActiveCallsMetric(
            lambda: self.active_calls,
            service_name=node.service_name,
            node_id=node.node_id,
            interval=node.metric_interval_seconds,
            emit=emit_metric,
        )
        #: Refused upgrades by reason code (``subprotocol``, ``token_expired``, ``full``, ...).
        self.refusals: Counter[str] = Counter()
        #: Finished calls by media outcome (``failed`` when a session raised).
        self.outcomes: Counter[str] = Counter()
        #: Sockets closed for breaking a limit, by reason (``no media frames for 15 s``, ...).
        self.limit_closes: Counter[str] = Counter()
        self._calls: dict[ServerConnection, LiveCall] = {}
        self._reserved = 0  # admissions in progress, counted against MAX_CALLS
        self._draining = False
        self._calls_changed = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stopped = asyncio.Event()
        self._server: Server | None = None
        self._background: list[asyncio.Task[None]] = []
        self._shutdown_task: asyncio.Task[None] | None = None

    # --- state -----------------------------------------------------------------------------

    @property
    def active_calls(self) -> int:
        """Admitted media sockets that have not ended yet."""
        return len(self._calls)

    @property
    def draining(self) -> bool:
        """Whether the node has stopped taking calls."""
        return self._draining

    @property
    def port(self) -> int:
        """The port actually bound (useful when the settings asked for port 0)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    def ready(self) -> bool:
        """Whether the node would take a new call now."""
        return not self._draining and self.active_calls + self._reserved < self.node.max_calls

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listener and start heartbeats, the metric and task protection."""
        limits = self.node.limits
        self._server = await serve(
            self._handle,
            self.node.host,
            self.node.port,
            process_request=self._process_request,
            subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
            create_connection=GuardedConnection.held_to(limits),
            open_timeout=limits.open_timeout,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            close_timeout=limits.close_timeout,
            max_size=limits.max_message_bytes,
            max_queue=limits.max_queue,
            write_limit=limits.write_limit,
        )
        for name, job in (
            ("heartbeat", self.heartbeat.run),
            ("active-calls-metric", self.metric.run),
            ("task-protection", self.protection.run),
            ("socket-limits", self._check_sockets),
        ):
            self._background.append(asyncio.create_task(job(), name=name))
        logger.info(
            "media node listening",
            extra={
                "node_id": self.node.node_id,
                "host": self.node.host,
                "port": self.port,
                "max_calls": self.node.max_calls,
            },
        )

    def request_stop(self) -> None:
        """Signal handler: the first call starts a drain, a later one hurries it."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.create_task(self.shutdown(), name="shutdown")
        else:
            logger.warning("second stop signal: shortening the drain")
            self._hurry.set()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`shutdown` has finished."""
        await self._stopped.wait()

    async def shutdown(self, drain_seconds: float | None = None) -> None:
        """Drain and stop (idempotent).

        Args:
            drain_seconds: how long live calls may continue before being drained
                (default ``DRAIN_SECONDS``).
        """
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        wait = self.node.drain_seconds if drain_seconds is None else drain_seconds
        logger.info(
            "draining: refusing new calls",
            extra={"active_calls": self.active_calls, "drain_seconds": wait},
        )
        try:
            await self.heartbeat.beat(draining=True)  # the webhook stops routing calls here
            await self._wait_for_calls(time.monotonic() + wait)
            await self._drain_remaining()
            await self._close_listener()
            await self.record_writes.wait(RECORD_WRITES_WAIT_SECONDS)
        finally:
            await self._stop_background()
            await self.heartbeat.beat(draining=True)
            self.metric.publish()
            logger.info("media node stopped", extra={"outcomes": dict(self.outcomes)})
            self._stopped.set()

    async def _wait_for_calls(self, deadline: float, *, until_hurried: bool = True) -> None:
        """Wait until no call is live or the deadline passes (or a hurry, if ``until_hurried``)."""
        while self._calls and not (until_hurried and self._hurry.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._calls_changed.clear()
            waiters = [asyncio.create_task(self._calls_changed.wait())]
            if until_hurried:
                waiters.append(asyncio.create_task(self._hurry.wait()))
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _drain_remaining(self) -> None:
        """Ask every live session to hand its caller over, then wait for them to end."""
        grace = HURRIED_GRACE_SECONDS if self._hurry.is_set() else DRAIN_GRACE_SECONDS
        deadline = time.monotonic() + grace
        calls = [call for call in self._calls.values() if call.session is not None]
        if calls:
            logger.info("draining live calls", extra={"active_calls": len(calls)})
            await asyncio.gather(*(self._drain_call(call, deadline) for call in calls))
        # A session's run() returns once its drain has closed the socket.
        await self._wait_for_calls(deadline + 1.0, until_hurried=False)
        for call in list(self._calls.values()):
            if call.task is not None and not call.task.done():
                logger.warning(
                    "call did not end after drain; cancelling", extra={"call_id": call.call_id}
                )
                call.task.cancel()

    async def _drain_call(self, call: LiveCall, deadline: float) -> None:
        assert call.session is not None
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await call.session.drain(deadline)
        except TimeoutError:
            logger.warning("session drain overran its deadline", extra={"call_id": call.call_id})
        except Exception:
            logger.exception("session drain failed", extra={"call_id": call.call_id})

    async def _close_listener(self) -> None:
        """Stop listening; connections are left to their sessions (no 1001 to live callers)."""
        assert self._server is not None
        self._server.close(close_connections=False)
        try:
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                await self._server.wait_closed()
        except TimeoutError:
            logger.warning("connections still open after drain; aborting them")
            for connection in list(self._server.all_connections):
                connection.transport.abort()

    async def _check_sockets(self) -> None:
        """Close silent sockets and abort those whose peer stopped reading (see socket_limits)."""
        limits = self.node.limits
        interval = min(1.0, limits.idle_seconds / 4, limits.write_stall_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            for connection in list(self._calls):
                if not isinstance(connection, GuardedConnection):
                    continue
                try:
                    connection.check()
                except Exception:  # one odd socket must not stop the checks of the others
                    logger.exception(
                        "socket limit check failed", extra={"call_id": connection.call_id}
                    )

    async def _stop_background(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        await self.protection.release()

    # --- HTTP and admission ----------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        if path == "/ready":
            if self._draining:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
            if not self.ready():
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "full\n")
            return connection.respond(HTTPStatus.OK, "ready\n")
        if path != AUDIO_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        try:
            call = await self._admit(request, query)
        except Refused as refusal:
            self.refusals[refusal.reason] += 1
            logger.info(
                "media socket refused",
                extra={
                    "call_id": refusal.call_id,
                    "reason": refusal.reason,
                    "status": int(refusal.status),
                    "remote": _remote(connection),
                },
            )
            return connection.respond(refusal.status, refusal.message + "\n")
        self._calls[connection] = call
        if isinstance(connection, GuardedConnection):
            connection.call_id = call.call_id
        self._changed()
        # If the upgrade never completes (client gone), forget the call; see _forget.
        connection.connection_lost_waiter.add_done_callback(lambda _: self._forget(connection))
        logger.info(
            "media socket admitted",
            extra={
                "call_id": call.call_id,
                "profile_number": call.profile.number,
                "active_calls": self.active_calls,
                "remote": _remote(connection),
            },
        )
        return None

    async def _admit(self, request: Request, query: str) -> LiveCall:
        """Run every check for a media socket; raises :class:`Refused` with the first failure."""
        if not is_websocket_upgrade(request.headers):
            raise Refused(
                HTTPStatus.UPGRADE_REQUIRED, "not_websocket", "WebSocket upgrade required"
            )
        if not set(offered_subprotocols(request.headers)) & set(SUBPROTOCOLS):
            raise Refused(
                HTTPStatus.BAD_REQUEST,
                "subprotocol",
                f"subprotocol {' or '.join(SUBPROTOCOLS)} required",
            )
        self._refuse_if_unavailable(None)
        self._reserved += 1  # hold a slot while the checks below wait on the table
        try:
            given = parse_qs(query).get("token")
            token = given[0] if given else None
            try:
                claims = tokens.verify_stream_token(self.node.stream_token_secret, token)
            except tokens.TokenError as exc:
                raise Refused(HTTPStatus.UNAUTHORIZED, f"token_{exc.reason}", str(exc)) from None
            call_id = claims.call_id
            try:
                claimed = await asyncio.to_thread(
                    store.claim_stream_token, self.table, call_id, claims.nonce, self.node.node_id
                )
            except Exception as exc:
                logger.exception("stream token claim failed", extra={"call_id": call_id})
                raise Refused(
                    HTTPStatus.SERVICE_UNAVAILABLE, "store_error", "call store unavailable", call_id
                ) from exc
            if not claimed:
                raise Refused(
                    HTTPStatus.FORBIDDEN,
                    "token_not_claimable",
                    "stream token unknown, superseded or already used",
                    call_id,
                )
            try:
                profile = await asyncio.to_thread(
                    store.get_profile, self.table, claims.profile_number
                )
            except Exception as exc:
                logger.exception("profile load failed", extra={"call_id": call_id})
                raise Refused(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    "profile_error",
                    "receptionist profile could not be loaded",
                    call_id,
                ) from exc
            if profile is None:
                raise Refused(
                    HTTPStatus.FORBIDDEN,
                    "profile_missing",
                    "no receptionist profile for this number",
                    call_id,
                )
        finally:
            self._reserved -= 1
        self._refuse_if_unavailable(call_id)  # a drain may have begun meanwhile
        return LiveCall(call_id=call_id, profile=profile, admitted_at=time.monotonic())

    def _refuse_if_unavailable(self, call_id: str | None) -> None:
        if self._draining:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "draining", "node is draining", call_id)
        if self.active_calls + self._reserved >= self.node.max_calls:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "full", "node is at capacity", call_id)

    # --- calls -----------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        call = self._calls.get(connection)
        if call is None:  # the client vanished between admission and now
            return
        call.task = asyncio.current_task()
        outcome = "failed"
        try:
            call.session = self.session_factory(connection, call.call_id, call.profile)
            outcome = await call.session.run()
        except Exception:
            logger.exception("call session failed", extra={"call_id": call.call_id})
            await connection.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self._calls.pop(connection, None)
            self._changed()
            self.outcomes[outcome] += 1
            limit = None
            if isinstance(connection, GuardedConnection):
                connection.log_summary()
                if connection.limiter.closed is not None:
                    limit = connection.limiter.closed.reason
                    self.limit_closes[limit] += 1
            logger.info(
                "call ended",
                extra={
                    "call_id": call.call_id,
                    "outcome": outcome,
                    "socket_limit": limit,
                    "seconds": round(time.monotonic() - call.admitted_at, 3),
                    "active_calls": self.active_calls,
                },
            )

    def _forget(self, connection: ServerConnection) -> None:
        """Drop an admitted call whose session never started (the upgrade did not complete)."""
        call = self._calls.get(connection)
        if call is not None and call.task is None:
            del self._calls[connection]
            self._changed()
            logger.info(
                "media socket closed before the call started", extra={"call_id": call.call_id}
            )

    def _changed(self) -> None:
        self._calls_changed.set()
        self.protection.set_active_calls(self.active_calls)


def _remote(connection: ServerConnection) -> str | None:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else None
