"""State behind the Sautikit API double: call detail records and numbers.

Sans-I/O and thread-safe; ``sautikit_api`` puts HTTP in front of it. Billing follows
Sautikit's published rates: inbound KES 0/min, outbound KES 3/min (300 minor units),
``ceil(duration/60) × rate`` (``per_minute``) or per second (``per_second``); the docs conflict.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


class CallLedger:
    """Call rows with a not-final window after completion.

    Args:
        workspace_id: Owner of every row.
        billing: ``"per_minute"`` or ``"per_second"``.
        not_final_reads: Reads of a completed call that still show it as not final.
        not_final_seconds: Seconds after completion during which it is not final.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        workspace_id: str,
        billing: str = "per_minute",
        not_final_reads: int = 1,
        not_final_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        call_cost_minor(60, 1, billing)  # validates the mode early
        self.workspace_id = workspace_id
        self.billing = billing
        self.not_final_reads = not_final_reads
        self.not_final_seconds = not_final_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._calls: dict[str, _CallRow] = {}
        self._session_index: dict[str, str] = {}

    def register(
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
        add_event(row, "call.started", {"direction": direction}, row["started_at"])
        if answered_at:
            add_event(row, "call.answered", {}, answered_at)
        with self._lock:
            if call_id in self._calls or session_id in self._session_index:
                raise ApiError(409, "idempotency.conflict", "call already registered")
            self._calls[call_id] = _CallRow(row)
            self._session_index[session_id] = call_id
        return json.loads(json.dumps(row))

    def complete(
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
            dialled: Dialled legs, each ``{"to": "+254…", "seconds": 42}`` (answered seconds),
                with an optional event ``kind`` (default ``dial.completed``).
            final_after_reads: Overrides ``not_final_reads`` for this call.
            final_after_seconds: Overrides ``not_final_seconds`` for this call.
        """
        if status not in TERMINAL_STATUSES:
            raise ApiError(400, "request.invalid", f"status must be one of {TERMINAL_STATUSES}")
        with self._lock:
            entry = self.find(call_id)
            if entry is None:
                raise ApiError(404, "calls.not_found", "call not found")
            row = entry.row
            now = utc_iso()
            if answered_at and not row["answered_at"]:
                row["answered_at"] = answered_at
                add_event(row, "call.answered", {}, answered_at)
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
            add_event(final, "call.completed", payload, final["ended_at"])
            entry.final_row = final
            entry.completed_monotonic = self._clock()
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
        add_event(parent, str(leg.get("kind") or "dial.completed"), payload, now)
        child = self.register(
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
        child_entry.completed_monotonic = self._clock()
        return cost

    def view(self, call_id: str, *, count_read: bool = False) -> dict[str, Any] | None:
        """The CDR as ``GET /v1/calls/{id}`` would return it now (without the envelope).

        Args:
            call_id: UUID or ``HD_…`` session id.
            count_read: Count this as an API read towards the not-final window.
        """
        with self._lock:
            entry = self.find(call_id)
            if entry is None:
                return None
            if entry.final_row is None:
                return json.loads(json.dumps(entry.row))
            elapsed = self._clock() - (entry.completed_monotonic or 0.0)
            reads = entry.reads_after_complete
            if count_read:
                entry.reads_after_complete += 1
            if reads < entry.final_after_reads or elapsed < entry.final_after_seconds:
                return json.loads(json.dumps(entry.row))
            return json.loads(json.dumps(entry.final_row))

    def find(self, ident: str) -> _CallRow | None:
        """The stored row for a UUID or ``HD_…`` session id."""
        with self._lock:
            if ident in self._calls:
                return self._calls[ident]
            row_id = self._session_index.get(ident)
            return self._calls.get(row_id) if row_id else None

    def views(self) -> list[dict[str, Any]]:
        """Every call as ``GET /v1/calls`` lists it: newest first."""
        with self._lock:
            ids = list(self._calls)
        return [v for v in (self.view(i) for i in reversed(ids)) if v is not None]


class NumberBook:
    """Number inventory, claimed numbers and the wallet that pays for them.

    Args:
        inventory: Claimable numbers; a KE default set when ``None``.
        wallet_balance_minor: Wallet balance; ``None`` means unlimited.
        insufficient_funds_code: The 402 error code spelling.
    """

    def __init__(
        self,
        inventory: list[dict[str, Any]] | None = None,
        wallet_balance_minor: int | None = None,
        insufficient_funds_code: str = "wallet.insufficient_funds",
    ) -> None:
        self.wallet_balance_minor = wallet_balance_minor
        self.insufficient_funds_code = insufficient_funds_code
        self._lock = threading.RLock()
        self._inventory = {n["id"]: n for n in (inventory or default_inventory())}
        self._owned: dict[str, dict[str, Any]] = {}

    def owned(self) -> list[dict[str, Any]]:
        """Numbers claimed so far (owned-number view)."""
        with self._lock:
            return [json.loads(json.dumps(n)) for n in self._owned.values()]

    def claim(self, inventory_ref: str | None, routing: dict[str, Any]) -> dict[str, Any]:
        """Claim an inventory number by inventory id or E.164, debiting the first month."""
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
            self._owned[number["id"]] = number
            if routing:
                self.route(number["id"], routing)
            return number

    def route(self, number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Set routing from any documented field spelling."""
        with self._lock:
            number = self._owned.get(number_id)
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

    def available(self, country: str | None) -> list[dict[str, Any]]:
        """Claimable inventory, optionally filtered by country."""
        with self._lock:
            return [
                {k: v for k, v in n.items() if k != "state"}
                for n in self._inventory.values()
                if n.get("state", "available") == "available"
                and (country is None or n["country"] == country)
            ]


def add_event(row: dict[str, Any], kind: str, payload: dict[str, Any], at: str) -> None:
    """Append a PBX lifecycle event (documented ``events[]`` shape) to a call row."""
    event = {
        "id": str(uuid.uuid4()),
        "call_id": row["id"],
        "kind": kind,
        "payload": payload,
        "occurred_at": at,
        "created_at": utc_iso(),
    }
    row["events"].append(event)


def default_inventory() -> list[dict[str, Any]]:
    """Four claimable Kenyan numbers priced as the routing guide shows."""
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
