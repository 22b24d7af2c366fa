"""A local double of the Sautikit REST API (calls, numbers, wallet) on 127.0.0.1.

It speaks the wire shapes of Sautikit's API documentation: bearer auth, the
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

Recordings: ``GET /v1/calls/{id}/recording`` answers 302 to a download URL (on the double)
for a call given one with ``POST /_double/calls/{id}/recording`` (WAV bytes), else 404 with the
proxy's bare ``{code, reason}``; a scripted ``ScriptedResponse.pending()`` gives the 202.

Sautikit documents no CDR for a ``<Dial>`` leg. The double folds the dialled leg's cost (outbound
rate) into the inbound call's ``cost_minor``, records it as a ``dial.completed`` event, and also
stores it as a child ``outbound`` call row whose ``metadata.parent_call_id`` names the parent.

Live-call supervision (``/v1/calls/{id}/supervision``, scopes ``calls.supervise`` and
``calls.read``) is in :mod:`doubles.sautikit_api.supervision`; its events are POSTed to
``events_url`` (or the events URL of the call's number), signed with ``webhook_secret`` when set.
The person behind the supervisor's phone is controlled without a key:
``POST /_double/person`` ``{"behaviour", "number"?, "answer_after"?, "ring_timeout"?, …}`` and
``POST /_double/calls/{id}/supervision/{answer|busy|hangup}``; ``GET
/_double/calls/{id}/supervision`` reads the state (the emulator follows it). ``POST
/_double/calls/{id}/events`` ``{"kind", "data"?}`` makes the platform post any other event about
the call to the events URL (the emulator's stream-stopped event, which the field saw there).

Run standalone with ``python -m doubles.sautikit_api --port 8090``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from urllib.request import Request, urlopen

from doubles.sautikit_api.state import (
    ApiError,
    CallLedger,
    NumberBook,
    call_cost_minor,
    utc_iso,
)
from doubles.sautikit_api.supervision import SupervisionDesk

__all__ = [
    "DEFAULT_API_KEY",
    "ApiError",
    "RecordedRequest",
    "SautikitApiDouble",
    "ScriptedResponse",
    "call_cost_minor",
    "utc_iso",
]

DEFAULT_API_KEY = "tsk_test_double"


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


class SautikitApiDouble:
    """Threaded HTTP server that behaves like ``https://api.sautikit.com`` for this project.

    Use as a context manager (``with SautikitApiDouble() as api: api.url``) or call
    ``start()``/``stop()``. Every request is appended to ``requests``.

    Args:
        api_key: The only bearer key accepted.
        scopes: Scopes the key holds; ``None`` grants all. A missing scope answers 403
            ``api_key.scope_denied``.
        billing: ``"per_minute"`` or ``"per_second"`` (Sautikit's pages conflict).
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
        events_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.scopes = scopes
        self.workspace_id = workspace_id or str(uuid.uuid4())
        self.calls = CallLedger(self.workspace_id, billing, not_final_reads, not_final_seconds)
        self.number_book = NumberBook(inventory, wallet_balance_minor, insufficient_funds_code)
        self.requests: list[RecordedRequest] = []
        #: Recordings by call id (UUID or ``HD_…``): WAV bytes ``/recording`` redirects to.
        self.recordings: dict[str, bytes] = {}
        self.events_url = events_url
        self.webhook_secret = webhook_secret
        #: Every event POST attempted: ``{"kind", "url", "status", "body"}``.
        self.event_deliveries: list[dict[str, Any]] = []
        self._person_legs: dict[str, list[dict[str, Any]]] = {}
        self.supervision = SupervisionDesk(
            find_call=self.call_view,
            is_live=self._call_live,
            on_event=self._send_event,
            add_leg=lambda call_id, leg: self._person_legs.setdefault(call_id, []).append(leg),
        )
        self._lock = threading.RLock()
        self._scripts: dict[tuple[str, str], deque[list[Any]]] = {}
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
            row = self.calls.find(ident)
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

    # -- state shortcuts ---------------------------------------------------------------------

    def register_call(self, **kwargs: Any) -> dict[str, Any]:
        """Create a live call row; see ``CallLedger.register``."""
        return self.calls.register(**kwargs)

    def complete_call(self, call_id: str, **kwargs: Any) -> dict[str, Any]:
        """End a call and compute its final CDR; see ``CallLedger.complete``.

        A supervisor still on the call leaves with it; people's legs are billed on the call.
        """
        entry = self.calls.find(call_id)
        if entry is not None:
            self.supervision.call_ended(entry.row["id"])
            legs = [
                {**leg, "kind": "supervision.completed"}
                for leg in self._person_legs.pop(entry.row["id"], [])
            ]
            kwargs["dialled"] = list(kwargs.get("dialled") or []) + legs
        return self.calls.complete(call_id, **kwargs)

    def _call_live(self, call_id: str) -> bool:
        entry = self.calls.find(call_id)
        return entry is not None and entry.final_row is None

    # -- supervision events ------------------------------------------------------------------

    def _send_event(self, kind: str, data: dict[str, Any], row: dict[str, Any]) -> str:
        """POST one event in the documented envelope (§1.11), from a thread like a platform;
        returns its ``event_id``."""
        url = self.events_url or next(
            (
                n.get("events_url")
                for n in self.numbers
                if n.get("e164") == row.get("local_e164") and n.get("events_url")
            ),
            None,
        )
        event_id = "evt_" + uuid.uuid4().hex
        envelope = {
            "kind": kind,
            "event_id": event_id,
            "workspace_id": self.workspace_id,
            "occurred_at": utc_iso(),
            "data": data,
        }
        delivery: dict[str, Any] = {"kind": kind, "url": url, "status": None, "body": envelope}
        with self._lock:
            self.event_deliveries.append(delivery)
        if url:
            threading.Thread(target=self._deliver, args=(url, delivery), daemon=True).start()
        return event_id

    def _post_call_event(self, ident: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``POST /_double/calls/{id}/events`` ``{"kind", "data"?}``: the platform posts one event
        about the call (say, a stream that stopped) to the events URL, as it posts its own."""
        row = self.call_view(ident)
        if row is None:
            return 404, _error_body("calls.not_found", "call not found"), {}
        kind = body.get("kind")
        if not isinstance(kind, str) or not kind:
            return 400, _error_body("request.invalid", "kind is required"), {}
        extra = body.get("data") or {}
        if not isinstance(extra, dict):
            return 400, _error_body("request.invalid", "data must be an object"), {}
        data = {"call_id": row["id"], "session_id": row.get("session_id"), **extra}
        return 202, {"event_id": self._send_event(kind, data, row)}, {}

    def _deliver(self, url: str, delivery: dict[str, Any]) -> None:
        raw = json.dumps(delivery["body"]).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Sautikit-Event": delivery["kind"],
            "X-Sautikit-Event-Id": delivery["body"]["event_id"],
            "X-Sautikit-Idempotency-Key": delivery["body"]["event_id"],
        }
        if self.webhook_secret:
            stamp = str(int(time.time()))
            digest = hmac.new(
                self.webhook_secret.encode(), raw + b"." + stamp.encode(), hashlib.sha256
            ).hexdigest()
            headers["X-Sautikit-Signature"] = f"t={stamp},v1={digest}"
        try:
            with urlopen(Request(url, data=raw, headers=headers, method="POST"), timeout=10) as r:
                delivery["status"] = r.status
        except OSError as exc:  # HTTPError included: record what the receiver said
            delivery["status"] = getattr(exc, "code", None) or f"error: {exc}"

    def call_view(self, call_id: str) -> dict[str, Any] | None:
        """The CDR as the API would serve it now, without counting a read."""
        return self.calls.view(call_id)

    @property
    def numbers(self) -> list[dict[str, Any]]:
        """Numbers claimed so far."""
        return self.number_book.owned()

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
        recording = re.fullmatch(r"/v1/calls/([^/]+)/recording", request.path)
        if recording and request.method == "GET":
            return self._recording_redirect(unquote(recording.group(1)))
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

    def _recording_redirect(self, ident: str) -> tuple[int, Any, dict[str, str]]:
        """302 to the recording's (here: the double's own) download URL, as the platform does;
        the proxy's terminal states answer a bare ``{code, reason}``."""
        row = self.calls.find(ident)
        ids = [ident] + ([row.row["id"], row.row["session_id"] or ""] if row else [])
        found = next((i for i in ids if i in self.recordings), None)
        if found is None:
            return 404, {"code": "recording_not_found", "reason": "no recording"}, {}
        location = f"{self.url}/_double/recordings/{quote(found, safe='')}?X-Amz-Expires=900"
        return 302, b"", {"Location": location}

    def _handle_double(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        path, method = request.path, request.method
        if path == "/_double/ping" and method == "GET":
            return 200, {"double": "sautikit", "version": 1}, {}
        stored = re.fullmatch(r"/_double/(?:recordings|calls)/([^/]+)(/recording)?", path)
        if stored and (stored.group(2) or path.startswith("/_double/recordings/")):
            ident = unquote(stored.group(1))
            if method == "POST" and stored.group(2):  # test setup: the call's WAV bytes
                self.recordings[ident] = request.body
                return 201, {"stored": len(request.body)}, {}
            if method == "GET" and not stored.group(2) and ident in self.recordings:
                return 200, self.recordings[ident], {"Content-Type": "audio/wav"}
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
        if path == "/_double/person" and method == "POST":
            body = _json_body(request)
            number = body.pop("number", None)
            settings = self.supervision.set_person(number, **body)
            return 200, {"number": number, **settings.__dict__}, {}
        match = re.fullmatch(r"/_double/calls/([^/]+)/events", path)
        if match and method == "POST":
            return self._post_call_event(unquote(match.group(1)), _json_body(request))
        match = re.fullmatch(r"/_double/calls/([^/]+)/supervision(?:/(answer|busy|hangup))?", path)
        if match and method == "GET" and not match.group(2):
            return 200, {"supervision": self.supervision.get(unquote(match.group(1)))}, {}
        if match and method == "POST" and match.group(2):
            view = self.supervision.person_acts(unquote(match.group(1)), match.group(2))
            return 200, {"supervision": view}, {}
        return 404, _error_body("not_found", f"no double route for {method} {path}"), {}


# -- route handlers (double, request, *path groups) -> (status, body) -------------------------


def _get_call(api: SautikitApiDouble, _req: RecordedRequest, ident: str) -> tuple[int, Any]:
    view = api.calls.view(ident, count_read=True)
    if view is None:
        raise ApiError(404, "calls.not_found", "call not found")
    return 200, {"call": view}


def _list_calls(api: SautikitApiDouble, req: RecordedRequest) -> tuple[int, Any]:
    rows = api.calls.views()
    session = (req.query.get("session_id") or [None])[0]
    statuses = set(",".join(req.query.get("status", [])).split(",")) - {""}
    data = [
        r
        for r in rows
        if (session is None or r["session_id"] == session)
        and (not statuses or r["status"] in statuses)
    ]
    limit = min(100, max(1, int((req.query.get("limit") or ["25"])[0])))
    return 200, {"data": data[:limit], "next_cursor": None}


def _hangup(api: SautikitApiDouble, _req: RecordedRequest, ident: str) -> tuple[int, Any]:
    entry = api.calls.find(ident)
    if entry is None:
        raise ApiError(404, "calls.not_found", "call not found")
    return 200, {"call_id": entry.row["id"], "status": "hung_up"}


def _start_supervision(api: SautikitApiDouble, req: RecordedRequest, ident: str) -> tuple[int, Any]:
    key = req.headers.get("idempotency-key")
    return api.supervision.start(ident, _json_body(req), key)


def _get_supervision(api: SautikitApiDouble, _req: RecordedRequest, ident: str) -> tuple[int, Any]:
    return 200, {"supervision": api.supervision.get(ident)}


def _patch_supervision(api: SautikitApiDouble, req: RecordedRequest, ident: str) -> tuple[int, Any]:
    return 200, api.supervision.patch(ident, _json_body(req).get("mode"))


def _delete_supervision(
    api: SautikitApiDouble, _req: RecordedRequest, ident: str
) -> tuple[int, Any]:
    return 200, {"supervision": api.supervision.delete(ident)}


def _available(api: SautikitApiDouble, req: RecordedRequest) -> tuple[int, Any]:
    country = (req.query.get("country") or [None])[0]
    items = api.number_book.available(country)
    return 200, items  # the routing guide pipes the response through `jq '.[0:3]'`: an array


def _claim_by_path(api: SautikitApiDouble, req: RecordedRequest, inv_id: str) -> tuple[int, Any]:
    body = _json_body(req) if req.body else {}
    return 201, _claim_view(api.number_book.claim(inv_id, _routing_fields(body)))


def _claim_by_body(api: SautikitApiDouble, req: RecordedRequest) -> tuple[int, Any]:
    body = _json_body(req)
    ref = body.get("inventory_id") or body.get("id") or body.get("number") or body.get("e164")
    if not ref:
        raise ApiError(400, "request.invalid", "inventory_id (or number) is required")
    return 201, _claim_view(api.number_book.claim(ref, _routing_fields(body)))


def _list_numbers(api: SautikitApiDouble, _req: RecordedRequest) -> tuple[int, Any]:
    return 200, {"numbers": [_owned_view(n) for n in api.numbers]}


def _patch_number(api: SautikitApiDouble, req: RecordedRequest, number_id: str) -> tuple[int, Any]:
    return 200, _owned_view(api.number_book.route(number_id, _json_body(req)))


def _wallet(api: SautikitApiDouble, _req: RecordedRequest) -> tuple[int, Any]:
    return 200, {
        "workspace_id": api.workspace_id,
        "balance_minor": api.number_book.wallet_balance_minor or 0,
        "currency": "KES",
        "low_balance_threshold_minor": 10000,
    }


_ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", r"/v1/calls", "calls.read", _list_calls),
    ("GET", r"/v1/calls/([^/]+)", "calls.read", _get_call),
    ("POST", r"/v1/calls/([^/]+)/hangup", "calls.write", _hangup),
    ("POST", r"/v1/calls/([^/]+)/supervision", "calls.supervise", _start_supervision),
    ("GET", r"/v1/calls/([^/]+)/supervision", "calls.read", _get_supervision),
    ("PATCH", r"/v1/calls/([^/]+)/supervision", "calls.supervise", _patch_supervision),
    ("DELETE", r"/v1/calls/([^/]+)/supervision", "calls.supervise", _delete_supervision),
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
    parser.add_argument("--events-url", help="where supervision events are POSTed")
    args = parser.parse_args(argv)
    api = SautikitApiDouble(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        billing=args.billing,
        not_final_reads=args.not_final_reads,
        not_final_seconds=args.not_final_seconds,
        events_url=args.events_url,
    )
    print(f"Sautikit API double on {api.url} (billing {args.billing})", flush=True)
    try:
        api._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        api._server.server_close()
