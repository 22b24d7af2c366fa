"""A local double of the Sautikit REST API (calls, numbers, wallet) on 127.0.0.1.

It speaks the documented wire shapes (``reference/sautikit.md`` §1.2-§1.10): bearer auth, the
``{"error": {"code", "message", "request_id"}}`` envelope, the wrapped ``{"call": {...}}`` CDR
that accepts the row UUID or the ``HD_…`` session id, and the numbers endpoints in every
documented spelling. Where Sautikit's docs conflict the double is configurable:

- billing: ``billing="per_minute"`` (default, ``ceil(duration/60) × rate`` from the calls
  concept page) or ``"per_second"`` (Kenya page, bulk blog);
- the 402 code: ``wallet.insufficient_funds`` (SDK, routing guide; default) or
  ``wallet_insufficient_funds`` (numbers concept page);
- claim paths: ``POST /v1/numbers`` (use-case pages), ``/v1/numbers/{inventory_id}/claim``,
  ``/v1/numbers/claim`` and ``/v1/numbers/available/claim`` are all accepted;
- routing: ``PATCH /v1/numbers/{id}`` or ``PATCH|PUT /v1/numbers/{id}/routing`` with
  ``routing_url``, ``voice_callback_url`` or ``voice_url`` plus ``events_url``.

Calls are created by the emulator (or a test) through double-only endpoints under
``/_double/`` that need no key: ``POST /_double/calls`` and ``POST /_double/calls/{id}/complete``.
A completed call reads as not final (``status`` still ``answered``, ``ended_at``,
``duration_seconds`` and ``cost_minor`` null) for ``not_final_reads`` reads and at least
``not_final_seconds`` seconds, which is what a CDR fetcher must retry on.

Sautikit documents no CDR for a ``<Dial>`` leg. The double folds the dialled leg's cost (outbound
rate) into the inbound call's ``cost_minor``, records it as a ``dial.completed`` event, and also
stores it as a child ``outbound`` call row whose ``metadata.parent_call_id`` names the parent.

Run standalone with ``python -m tests.doubles.sautikit_api --port 8090``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_API_KEY = "tsk_test_double"
INBOUND_RATE_MINOR = 0  # KES 0/min inbound [S-KE, B-FIRST]
OUTBOUND_RATE_MINOR = 300  # KES 3.00/min outbound = 300 minor units [S-KE, B-FIRST]
MONTHLY_PRICE_MINOR = 10000  # KES 100/month per number [S-G-ROUTE]
TERMINAL_STATUSES = ("completed", "failed", "no_answer", "busy", "canceled")


def utc_iso(moment: datetime | None = None) -> str:
    """Format a timestamp the way Sautikit's docs show it: ``2026-06-27T12:00:00Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_session_id() -> str:
    """A PBX session id shaped like the documented ``HD_24d73b4518bc``."""
    return "HD_" + secrets.token_hex(6)


def call_cost_minor(duration_seconds: float, rate_per_minute_minor: int, billing: str) -> int:
    """Cost of one leg in minor units.

    Args:
        duration_seconds: Answered duration of the leg.
        rate_per_minute_minor: Rate in minor units per minute.
        billing: ``"per_minute"`` (each started minute billed in full) or ``"per_second"``.
    """
    if duration_seconds <= 0 or rate_per_minute_minor == 0:
        return 0
    if billing == "per_minute":
        return math.ceil(duration_seconds / 60) * rate_per_minute_minor
    if billing == "per_second":
        return math.ceil(math.ceil(duration_seconds) * rate_per_minute_minor / 60)
    raise ValueError(f"unknown billing mode {billing!r}")


@dataclass
class RecordedRequest:
    """One request as the double received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class ScriptedResponse:
    """A response the double returns instead of (or before) its normal handling.

    ``status=None`` means "handle normally", so ``delay`` and ``unwrap`` can modify a real answer.
    """

    status: int | None = None
    body: Any = None  # dict/list -> JSON, bytes -> sent raw
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    unwrap: bool = False

    @classmethod
    def pending(cls, retry_after_seconds: int = 1) -> ScriptedResponse:
        """202 with the documented pending body (as the recording endpoint uses it)."""
        body = {"status": "pending", "retry_after_seconds": retry_after_seconds}
        return cls(202, body, {"Retry-After": str(retry_after_seconds)})

    @classmethod
    def not_found(cls) -> ScriptedResponse:
        """404 ``calls.not_found``."""
        return cls(404, _error_body("calls.not_found", "call not found"))

    @classmethod
    def rate_limited(cls, retry_after_seconds: int = 1) -> ScriptedResponse:
        """429 with ``Retry-After`` (Sautikit documents no rate limits; shape is ours)."""
        body = _error_body("rate_limited", "too many requests")
        return cls(429, body, {"Retry-After": str(retry_after_seconds)})

    @classmethod
    def server_error(cls, status: int = 500) -> ScriptedResponse:
        """A 5xx with the ``internal_error`` code."""
        return cls(status, _error_body("internal_error", "upstream failure"))

    @classmethod
    def slow(cls, delay: float) -> ScriptedResponse:
        """The normal answer, after ``delay`` seconds."""
        return cls(delay=delay)

    @classmethod
    def malformed(cls) -> ScriptedResponse:
        """200 whose body is truncated JSON."""
        return cls(200, b'{"call": {"id": "', {"Content-Type": "application/json"})

    @classmethod
    def unwrapped(cls) -> ScriptedResponse:
        """The normal CDR without the ``{"call": ...}`` envelope."""
        return cls(unwrap=True)


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": "req_" + uuid.uuid4().hex}}


class ApiError(Exception):
    """Raised inside a handler to answer with the documented error envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _CallRow:
    row: dict[str, Any]
    final_row: dict[str, Any] | None = None
    completed_monotonic: float | None = None
    reads_after_complete: int = 0
    final_after_reads: int = 0
    final_after_seconds: float = 0.0


class SautikitApiDouble:
    """Threaded HTTP server that behaves like ``https://api.sautikit.com`` for this project.

    Use as a context manager (``with SautikitApiDouble() as api: api.url``) or call
    ``start()``/``stop()``. Every request is appended to ``requests``.

    Args:
        api_key: The only bearer key accepted.
        scopes: Scopes the key holds; ``None`` grants all. A missing scope answers 403
            ``api_key.scope_denied``.
        billing: ``"per_minute"`` or ``"per_second"`` (docs conflict, §1.10).
        not_final_reads: Reads of a completed call that still show it as not final.
        not_final_seconds: Seconds after completion during which it is not final.
        wallet_balance_minor: Wallet balance; ``None`` means unlimited.
        insufficient_funds_code: The 402 error code spelling.
        inventory: Numbers available to claim; a KE default set when ``None``.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        scopes: set[str] | None = None,
        billing: str = "per_minute",
        not_final_reads: int = 1,
        not_final_seconds: float = 0.0,
        wallet_balance_minor: int | None = None,
        insufficient_funds_code: str = "wallet.insufficient_funds",
        inventory: list[dict[str, Any]] | None = None,
        workspace_id: str | None = None,
    ) -> None:
        call_cost_minor(60, 1, billing)  # validates the mode early
        self.api_key = api_key
        self.scopes = scopes
        self.billing = billing
        self.not_final_reads = not_final_reads
        self.not_final_seconds = not_final_seconds
        self.wallet_balance_minor = wallet_balance_minor
        self.insufficient_funds_code = insufficient_funds_code
        self.workspace_id = workspace_id or str(uuid.uuid4())
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._calls: dict[str, _CallRow] = {}
        self._session_index: dict[str, str] = {}
        self._scripts: dict[tuple[str, str], deque[list[Any]]] = {}
        self._inventory = {n["id"]: n for n in (inventory or _default_inventory())}
        self._numbers: dict[str, dict[str, Any]] = {}
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SautikitApiDouble:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # quick shutdown() between tests
            name="sautikit-api-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SautikitApiDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection -------------------------------------------------------------------

    def script(
        self,
        *responses: ScriptedResponse,
        path: str | None = None,
        call_id: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Queue responses, used in order, one per matching request.

        Args:
            responses: What to answer, in order.
            path: Match this exact request path.
            call_id: Match any ``/v1/calls/{id}…`` request for this call (UUID or ``HD_…``).
            times: How often each response is used; ``None`` repeats it forever.
            With neither ``path`` nor ``call_id`` the responses apply to every API request.
        """
        key = ("path", path) if path else ("call", call_id) if call_id else ("global", "")
        with self._lock:
            queue = self._scripts.setdefault(key, deque())
            for response in responses:
                queue.append([response, times])

    def _take_scripted(self, path: str) -> ScriptedResponse | None:
        keys = [("path", path)]
        match = re.match(r"^/v1/calls/([^/]+)", path)
        if match and match.group(1) != "stats":
            ident = unquote(match.group(1))
            keys.append(("call", ident))
            row = self._find_call(ident)
            if row:
                keys += [("call", row.row["id"]), ("call", row.row["session_id"] or "")]
        keys.append(("global", ""))
        with self._lock:
            for key in keys:
                queue = self._scripts.get(key)
                if queue:
                    entry = queue[0]
                    if entry[1] is not None:
                        entry[1] -= 1
                        if entry[1] <= 0:
                            queue.popleft()
                    return entry[0]
        return None

    # -- calls -----------------------------------------------------------------------------

    def register_call(
        self,
        *,
        call_id: str | None = None,
        session_id: str | None = None,
        direction: str = "inbound",
        from_e164: str = "+254711000001",
        to_e164: str = "+254700000100",
        started_at: str | None = None,
        answered_at: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a live call row (``ringing``, or ``answered`` when ``answered_at`` is set)."""
        if direction not in ("inbound", "outbound"):
            raise ApiError(400, "request.invalid", "direction must be inbound or outbound")
        call_id = call_id or str(uuid.uuid4())
        session_id = session_id or new_session_id()
        now = utc_iso()
        local, remote = (to_e164, from_e164) if direction == "inbound" else (from_e164, to_e164)
        rate = INBOUND_RATE_MINOR if direction == "inbound" else OUTBOUND_RATE_MINOR
        row: dict[str, Any] = {
            "id": call_id,
            "workspace_id": self.workspace_id,
            "session_id": session_id,
            "direction": direction,
            "local_e164": local,
            "remote_e164": remote,
            "country": "KE" if remote.startswith("+254") else None,
            "started_at": started_at or now,
            "answered_at": answered_at,
            "ended_at": None,
            "duration_seconds": None,
            "status": "answered" if answered_at else "ringing",
            "cost_minor": None,
            "cost_currency": "KES",
            "rate_per_minute_minor": rate,
            "failure_code": None,
            "metadata": metadata,
            "created_at": now,
            "updated_at": now,
            "events": [],
        }
        _add_event(row, "call.started", {"direction": direction}, row["started_at"])
        if answered_at:
            _add_event(row, "call.answered", {}, answered_at)
        with self._lock:
            if call_id in self._calls or session_id in self._session_index:
                raise ApiError(409, "idempotency.conflict", "call already registered")
            self._calls[call_id] = _CallRow(row)
            self._session_index[session_id] = call_id
        return json.loads(json.dumps(row))

    def complete_call(
        self,
        call_id: str,
        *,
        duration_seconds: float,
        answered_at: str | None = None,
        ended_at: str | None = None,
        status: str = "completed",
        failure_code: str | None = None,
        dialled: list[dict[str, Any]] | None = None,
        final_after_reads: int | None = None,
        final_after_seconds: float | None = None,
    ) -> dict[str, Any]:
        """End a call and compute its final CDR (served once the not-final window passes).

        Args:
            call_id: UUID or ``HD_…`` session id.
            duration_seconds: Answered duration of the inbound leg.
            dialled: Dialled legs, each ``{"to": "+254…", "seconds": 42}`` (answered seconds).
            final_after_reads: Overrides ``not_final_reads`` for this call.
            final_after_seconds: Overrides ``not_final_seconds`` for this call.
        """
        if status not in TERMINAL_STATUSES:
            raise ApiError(400, "request.invalid", f"status must be one of {TERMINAL_STATUSES}")
        with self._lock:
            entry = self._find_call(call_id)
            if entry is None:
                raise ApiError(404, "calls.not_found", "call not found")
            row = entry.row
            now = utc_iso()
            if answered_at and not row["answered_at"]:
                row["answered_at"] = answered_at
                _add_event(row, "call.answered", {}, answered_at)
            row["status"] = "answered" if row["answered_at"] else row["status"]
            row["updated_at"] = now
            final = json.loads(json.dumps(row))
            duration = max(0, math.ceil(duration_seconds)) if row["answered_at"] else 0
            cost = call_cost_minor(duration, row["rate_per_minute_minor"], self.billing)
            for leg in dialled or []:
                cost += self._add_dialled_leg(final, leg, now)
            final.update(
                status=status,
                ended_at=ended_at or now,
                duration_seconds=duration,
                cost_minor=cost,
                failure_code=failure_code,
            )
            payload = {"duration_seconds": duration, "hangup_cause": "normal_clearing"}
            _add_event(final, "call.completed", payload, final["ended_at"])
            entry.final_row = final
            entry.completed_monotonic = time.monotonic()
            entry.reads_after_complete = 0
            entry.final_after_reads = (
                self.not_final_reads if final_after_reads is None else final_after_reads
            )
            entry.final_after_seconds = (
                self.not_final_seconds if final_after_seconds is None else final_after_seconds
            )
            return json.loads(json.dumps(final))

    def _add_dialled_leg(self, parent: dict[str, Any], leg: dict[str, Any], now: str) -> int:
        seconds = max(0, math.ceil(float(leg.get("seconds", 0))))
        cost = call_cost_minor(seconds, OUTBOUND_RATE_MINOR, self.billing)
        child_id = str(uuid.uuid4())
        payload = {
            "to": leg.get("to"),
            "duration_seconds": seconds,
            "rate_per_minute_minor": OUTBOUND_RATE_MINOR,
            "cost_minor": cost,
            "child_call_id": child_id,
        }
        _add_event(parent, "dial.completed", payload, now)
        child = self.register_call(
            call_id=child_id,
            direction="outbound",
            from_e164=parent["local_e164"],
            to_e164=str(leg.get("to") or ""),
            answered_at=now if seconds else None,
            metadata={"parent_call_id": parent["id"]},
        )
        child_entry = self._calls[child["id"]]
        final_child = json.loads(json.dumps(child_entry.row))
        final_child.update(
            status="completed" if seconds else "no_answer",
            ended_at=now,
            duration_seconds=seconds,
            cost_minor=cost,
        )
        child_entry.row = child_entry.final_row = final_child
        child_entry.completed_monotonic = time.monotonic()
        return cost

    def call_view(self, call_id: str, *, count_read: bool = False) -> dict[str, Any] | None:
        """The CDR as ``GET /v1/calls/{id}`` would return it now (without the envelope)."""
        with self._lock:
            entry = self._find_call(call_id)
            if entry is None:
                return None
            if entry.final_row is None:
                return json.loads(json.dumps(entry.row))
            elapsed = time.monotonic() - (entry.completed_monotonic or 0.0)
            reads = entry.reads_after_complete
            if count_read:
                entry.reads_after_complete += 1
            if reads < entry.final_after_reads or elapsed < entry.final_after_seconds:
                return json.loads(json.dumps(entry.row))
            return json.loads(json.dumps(entry.final_row))

    def _find_call(self, ident: str) -> _CallRow | None:
        with self._lock:
            if ident in self._calls:
                return self._calls[ident]
            row_id = self._session_index.get(ident)
            return self._calls.get(row_id) if row_id else None

    # -- numbers ---------------------------------------------------------------------------

    @property
    def numbers(self) -> list[dict[str, Any]]:
        """Numbers claimed so far (owned-number view)."""
        with self._lock:
            return [json.loads(json.dumps(n)) for n in self._numbers.values()]

    def _claim(self, inventory_ref: str | None, routing: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            item = self._inventory.get(inventory_ref or "") or next(
                (n for n in self._inventory.values() if n["number"] == inventory_ref), None
            )
            if item is None:
                raise ApiError(404, "numbers.not_found", "no such inventory number")
            if item.get("state", "available") != "available":
                raise ApiError(409, "numbers.not_available", "number is not available")
            price = item["monthly_price_minor"]
            if self.wallet_balance_minor is not None:
                if self.wallet_balance_minor < price:
                    raise ApiError(402, self.insufficient_funds_code, "insufficient wallet balance")
                self.wallet_balance_minor -= price
            item["state"] = "assigned"
            now = utc_iso()
            number = {
                "id": str(uuid.uuid4()),
                "number": item["number"],
                "e164": item["number"],
                "country_iso2": item["country"],
                "status": "active",
                "currency": item["currency"],
                "monthly_price_minor": price,
                "monthly_retail_minor": price,
                "inbound_per_min_minor": item["inbound_per_min_minor"],
                "outbound_per_min_minor": item["outbound_per_min_minor"],
                "capabilities": list(item["capabilities"]),
                "claimed_at": now,
                "created_at": now,
                "inventory_id": item["id"],
                "voice_callback_url": None,
                "routing_url": None,
                "events_url": None,
            }
            self._numbers[number["id"]] = number
            if routing:
                self._route(number["id"], routing)
            return number

    def _route(self, number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            number = self._numbers.get(number_id)
            if number is None:
                raise ApiError(404, "numbers.not_found", "number not found")
            voice = next(
                (body[k] for k in ("routing_url", "voice_callback_url", "voice_url") if k in body),
                None,
            )
            if voice is None and "events_url" not in body:
                raise ApiError(
                    400, "request.invalid", "routing_url/voice_callback_url or events_url required"
                )
            if voice is not None:
                number["voice_callback_url"] = number["routing_url"] = voice
            if "events_url" in body:
                number["events_url"] = body["events_url"]
            if "voice_signing_secret" in body:
                number["_voice_signing_secret"] = body["voice_signing_secret"]
            return number

    # -- request dispatch ------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: ``(status, body, headers)``; body is JSON-able or bytes."""
        with self._lock:
            self.requests.append(request)
        if request.path.startswith("/_double/"):
            return self._handle_double(request)
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            return 401, _error_body("api_key.invalid", "missing or invalid API key"), {}
        scripted = self._take_scripted(request.path)
        if scripted and scripted.delay:
            time.sleep(scripted.delay)
        if scripted and scripted.status is not None:
            return scripted.status, scripted.body, scripted.headers
        for method, pattern, scope, handler in _ROUTES:
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                if self.scopes is not None and scope not in self.scopes:
                    body = _error_body("api_key.scope_denied", f"API key lacks scope {scope}")
                    return 403, body, {}
                status, body = handler(self, request, *map(unquote, match.groups()))
                if scripted and scripted.unwrap and isinstance(body, dict) and "call" in body:
                    body = body["call"]
                return status, body, {}
        return 404, _error_body("not_found", f"no route for {request.method} {request.path}"), {}

    def _handle_double(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        path, method = request.path, request.method
        if path == "/_double/ping" and method == "GET":
            return 200, {"double": "sautikit", "version": 1}, {}
        if path == "/_double/calls" and method == "POST":
            body = _json_body(request)
            row = self.register_call(
                call_id=body.get("call_id"),
                session_id=body.get("session_id"),
                direction=body.get("direction", "inbound"),
                from_e164=body.get("from") or body.get("remote_e164") or "+254711000001",
                to_e164=body.get("to") or body.get("local_e164") or "+254700000100",
                started_at=body.get("started_at"),
                answered_at=body.get("answered_at"),
                metadata=body.get("metadata"),
            )
            return 201, {"call": row}, {}
        match = re.fullmatch(r"/_double/calls/([^/]+)/complete", path)
        if match and method == "POST":
            body = _json_body(request)
            dialled = list(body.get("dialled") or [])
            if body.get("dialled_seconds"):
                dialled.append({"to": body.get("dialled_to"), "seconds": body["dialled_seconds"]})
            final = self.complete_call(
                unquote(match.group(1)),
                duration_seconds=float(body.get("duration_seconds", 0)),
                answered_at=body.get("answered_at"),
                ended_at=body.get("ended_at"),
                status=body.get("status", "completed"),
                failure_code=body.get("failure_code"),
                dialled=dialled,
                final_after_reads=body.get("final_after_reads"),
                final_after_seconds=body.get("final_after_seconds"),
            )
            return 200, {"call": final}, {}
        return 404, _error_body("not_found", f"no double route for {method} {path}"), {}


# -- route handlers (double, request, *path groups) -> (status, body) -------------------------


def _get_call(api: SautikitApiDouble, _req: RecordedRequest, ident: str) -> tuple[int, Any]:
    view = api.call_view(ident, count_read=True)
    if view is None:
        raise ApiError(404, "calls.not_found", "call not found")
    return 200, {"call": view}


def _list_calls(api: SautikitApiDouble, req: RecordedRequest) -> tuple[int, Any]:
    with api._lock:
        ids = list(api._calls)
    rows = [api.call_view(i) for i in reversed(ids)]
    session = (req.query.get("session_id") or [None])[0]
    statuses = set(",".join(req.query.get("status", [])).split(",")) - {""}
    data = [
        r
        for r in rows
        if r
        and (session is None or r["session_id"] == session)
        and (not statuses or r["status"] in statuses)
    ]
    limit = min(100, max(1, int((req.query.get("limit") or ["25"])[0])))
    return 200, {"data": data[:limit], "next_cursor": None}


def _hangup(api: SautikitApiDouble, _req: RecordedRequest, ident: str) -> tuple[int, Any]:
    entry = api._find_call(ident)
    if entry is None:
        raise ApiError(404, "calls.not_found", "call not found")
    return 200, {"call_id": entry.row["id"], "status": "hung_up"}


def _available(api: SautikitApiDouble, req: RecordedRequest) -> tuple[int, Any]:
    country = (req.query.get("country") or [None])[0]
    with api._lock:
        items = [
            {k: v for k, v in n.items() if k != "state"}
            for n in api._inventory.values()
            if n.get("state", "available") == "available"
            and (country is None or n["country"] == country)
        ]
    return 200, items  # the routing guide pipes the response through `jq '.[0:3]'`: an array


def _claim_by_path(api: SautikitApiDouble, req: RecordedRequest, inv_id: str) -> tuple[int, Any]:
    body = _json_body(req) if req.body else {}
    return 201, _claim_view(api._claim(inv_id, _routing_fields(body)))


def _claim_by_body(api: SautikitApiDouble, req: RecordedRequest) -> tuple[int, Any]:
    body = _json_body(req)
    ref = body.get("inventory_id") or body.get("id") or body.get("number") or body.get("e164")
    if not ref:
        raise ApiError(400, "request.invalid", "inventory_id (or number) is required")
    return 201, _claim_view(api._claim(ref, _routing_fields(body)))


def _list_numbers(api: SautikitApiDouble, _req: RecordedRequest) -> tuple[int, Any]:
    return 200, {"numbers": [_owned_view(n) for n in api.numbers]}


def _patch_number(api: SautikitApiDouble, req: RecordedRequest, number_id: str) -> tuple[int, Any]:
    return 200, _owned_view(api._route(number_id, _json_body(req)))


def _wallet(api: SautikitApiDouble, _req: RecordedRequest) -> tuple[int, Any]:
    return 200, {
        "workspace_id": api.workspace_id,
        "balance_minor": api.wallet_balance_minor if api.wallet_balance_minor is not None else 0,
        "currency": "KES",
        "low_balance_threshold_minor": 10000,
    }


_ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", r"/v1/calls", "calls.read", _list_calls),
    ("GET", r"/v1/calls/([^/]+)", "calls.read", _get_call),
    ("POST", r"/v1/calls/([^/]+)/hangup", "calls.write", _hangup),
    ("GET", r"/v1/numbers/available", "numbers.read", _available),
    ("POST", r"/v1/numbers", "numbers.claim", _claim_by_body),
    ("POST", r"/v1/numbers/claim", "numbers.claim", _claim_by_body),
    ("POST", r"/v1/numbers/available/claim", "numbers.claim", _claim_by_body),
    ("POST", r"/v1/numbers/([^/]+)/claim", "numbers.claim", _claim_by_path),
    ("GET", r"/v1/numbers", "numbers.read", _list_numbers),
    ("PATCH", r"/v1/numbers/([^/]+)", "numbers.write", _patch_number),
    ("PATCH", r"/v1/numbers/([^/]+)/routing", "numbers.write", _patch_number),
    ("PUT", r"/v1/numbers/([^/]+)/routing", "numbers.write", _patch_number),
    ("GET", r"/v1/wallet/balance", "wallet.read", _wallet),
    ("GET", r"/v1/wallet", "wallet.read", _wallet),
]


def _claim_view(number: dict[str, Any]) -> dict[str, Any]:
    """The documented claim response [S-G-ROUTE]."""
    keys = ("id", "number", "status", "currency", "monthly_price_minor", "created_at")
    return {k: number[k] for k in keys}


def _owned_view(number: dict[str, Any]) -> dict[str, Any]:
    """The owned-number shape observed in production [TP-DASH], plus ``number``/``routing_url``."""
    return {k: v for k, v in number.items() if not k.startswith("_")}


def _routing_fields(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("routing_url", "voice_callback_url", "voice_url", "events_url", "voice_signing_secret")
    return {k: body[k] for k in keys if k in body}


def _json_body(request: RecordedRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ApiError(400, "request.invalid", f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request.invalid", "body must be a JSON object")
    return body


def _add_event(row: dict[str, Any], kind: str, payload: dict[str, Any], at: str) -> None:
    event = {
        "id": str(uuid.uuid4()),
        "call_id": row["id"],
        "kind": kind,
        "payload": payload,
        "occurred_at": at,
        "created_at": utc_iso(),
    }
    row["events"].append(event)


def _default_inventory() -> list[dict[str, Any]]:
    numbers = ["+254207650100", "+254207650101", "+254207650102", "+254700000100"]
    return [
        {
            "id": str(uuid.uuid4()),
            "number": number,
            "country": "KE",
            "capabilities": ["voice"],
            "monthly_price_minor": MONTHLY_PRICE_MINOR,
            "inbound_per_min_minor": INBOUND_RATE_MINOR,
            "outbound_per_min_minor": OUTBOUND_RATE_MINOR,
            "currency": "KES",
        }
        for number in numbers
    ]


def _make_handler(api: SautikitApiDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sautikit-api-double"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            try:
                status, body, headers = api.handle(request)
            except ApiError as err:
                status, body, headers = err.status, _error_body(err.code, err.message), {}
            except (ValueError, TypeError) as exc:  # a malformed double-only request
                status, body, headers = 400, _error_body("request.invalid", str(exc)), {}
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            if "Content-Type" not in headers:
                self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests assert on ``api.requests`` instead."""

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve the double until interrupted (for the local stack)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=os.environ.get("SAUTIKIT_API_KEY", DEFAULT_API_KEY))
    parser.add_argument("--billing", choices=["per_minute", "per_second"], default="per_minute")
    parser.add_argument("--not-final-reads", type=int, default=1)
    parser.add_argument("--not-final-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    api = SautikitApiDouble(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        billing=args.billing,
        not_final_reads=args.not_final_reads,
        not_final_seconds=args.not_final_seconds,
    )
    print(f"Sautikit API double on {api.url} (billing {args.billing})", flush=True)
    try:
        api._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        api._server.server_close()


if __name__ == "__main__":
    main()
