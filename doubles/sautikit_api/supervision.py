"""Live-call supervision in the Sautikit API double: the wire shapes of §1.10b, a person to ring.

``POST/GET/PATCH/DELETE /v1/calls/{id}/supervision`` follow the SDK (``reference/sautikit.md``
§1.10b): one supervisor per call (a second POST is 409 ``calls.supervision_in_progress``), the
``Idempotency-Key`` replays the same supervision, PATCH is 409 while the supervisor still rings.
States move ``connecting`` → ``ringing`` → ``connected`` → ``ended`` (or ``failed``) on timers,
driven by what the person behind the supervisor's phone does:

- ``answer``: answers after ``answer_after`` seconds of ringing;
- ``busy``: the line is busy (``failed``, reason ``busy``);
- ``no_answer``: rings until ``ring_timeout`` (``failed``, reason ``no_answer``);
- ``fail``: the leg cannot be set up (``failed``, reason ``network_error``);
- ``manual``: rings until the control API says answer, busy or hang up (or the ring timeout).

Assumptions (not documented by Sautikit, marked so they are easy to change): the
``failure_reason`` field on a failed supervision, the 409 ``calls.not_in_progress`` for a call
that has ended, and the event kinds ``call.supervision.ringing|connected|ended|failed`` — the SDK
only says supervision events exist. Events use the documented envelope (§1.11) and go to the
configured events URL, else to the events URL the call's number is routed to.

When a connected person leaves, their leg is billed at the outbound rate: the leg is handed to
the call ledger so the completed call's CDR carries it (a ``supervision.completed`` event with
``cost_minor`` and a child ``outbound`` row).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from doubles.sautikit_api.state import ApiError, utc_iso

BEHAVIOURS = ("answer", "busy", "no_answer", "fail", "manual")
LIVE_STATES = ("connecting", "ringing", "connected")

#: Event sink: ``(kind, data, call_row)``; the HTTP layer turns it into a POST.
EventSink = Callable[[str, dict[str, Any], dict[str, Any]], None]


@dataclass
class PersonSettings:
    """What the person behind a supervisor phone does, and how fast."""

    behaviour: str = "answer"
    ring_after: float = 0.2
    answer_after: float = 1.0
    ring_timeout: float = 30.0


@dataclass
class _Supervision:
    view: dict[str, Any]
    call_id: str
    key: str
    body_hash: str
    settings: PersonSettings
    connected_mono: float | None = None
    timers: list[threading.Timer] = field(default_factory=list)


class SupervisionDesk:
    """Supervisions of the double's live calls.

    Args:
        find_call: ``ident -> call row`` (UUID or ``HD_…``), or None.
        is_live: ``call id -> bool``: the call has not completed.
        on_event: receives every supervision event.
        add_leg: ``(call id, {"to", "seconds"})``: bill a person's leg on the call.
    """

    def __init__(
        self,
        find_call: Callable[[str], dict[str, Any] | None],
        is_live: Callable[[str], bool],
        on_event: EventSink,
        add_leg: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._find_call = find_call
        self._is_live = is_live
        self._on_event = on_event
        self._add_leg = add_leg
        self._clock = clock
        self._lock = threading.RLock()
        self._by_call: dict[str, _Supervision] = {}
        self._by_key: dict[str, _Supervision] = {}
        self.defaults = PersonSettings()
        self.per_number: dict[str, PersonSettings] = {}

    # -- the person (control API) -----------------------------------------------------------

    def set_person(self, number: str | None = None, **settings: Any) -> PersonSettings:
        """Set what the person does (for ``number``, or for every number without its own)."""
        behaviour = settings.get("behaviour", "answer")
        if behaviour not in BEHAVIOURS:
            raise ApiError(400, "request.invalid", f"behaviour must be one of {BEHAVIOURS}")
        base = self.defaults if number is None else self.per_number.get(number, self.defaults)
        chosen = PersonSettings(**{**base.__dict__, **settings})
        with self._lock:
            if number is None:
                self.defaults = chosen
            else:
                self.per_number[number] = chosen
        return chosen

    def person_acts(self, call_ident: str, action: str) -> dict[str, Any]:
        """The person answers, is busy, or hangs up now (``answer`` | ``busy`` | ``hangup``)."""
        with self._lock:
            sup = self._live(call_ident)
            state = sup.view["state"]
            if action == "answer" and state in ("connecting", "ringing"):
                self._connect(sup)
            elif action == "busy" and state in ("connecting", "ringing"):
                self._finish(sup, "failed", "busy")
            elif action == "hangup" and state == "connected":
                self._finish(sup, "ended", "supervisor_hangup")
            elif action == "hangup" and state in ("connecting", "ringing"):
                self._finish(sup, "failed", "rejected")
            else:
                raise ApiError(409, "request.invalid", f"cannot {action} while {state}")
            return dict(sup.view)

    # -- the API ----------------------------------------------------------------------------

    def start(
        self, call_ident: str, body: dict[str, Any], idempotency_key: str | None
    ) -> tuple[int, dict[str, Any]]:
        """``POST /v1/calls/{id}/supervision``: (status, CallSupervision)."""
        mode, supervisor = body.get("mode"), body.get("supervisor")
        if mode not in ("listen", "whisper", "barge"):
            raise ApiError(400, "request.invalid", "mode must be listen, whisper or barge")
        if not isinstance(supervisor, dict) or supervisor.get("type") not in (
            "phone",
            "client",
            "sip",
        ):
            raise ApiError(400, "request.invalid", "supervisor.type must be phone, client or sip")
        if supervisor["type"] == "phone" and not str(supervisor.get("number", "")).startswith("+"):
            raise ApiError(400, "request.invalid", "supervisor.number must be E.164")
        label = body.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 64):
            raise ApiError(400, "request.invalid", "label must be text of at most 64 characters")
        body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            row = self._find_call(call_ident)
            if row is None:
                raise ApiError(404, "calls.not_found", "call not found")
            if idempotency_key and idempotency_key in self._by_key:
                earlier = self._by_key[idempotency_key]
                if earlier.call_id != row["id"] or earlier.body_hash != body_hash:
                    raise ApiError(409, "idempotency.conflict", "key reused with another request")
                return 201, dict(earlier.view)
            if not self._is_live(row["id"]):
                raise ApiError(409, "calls.not_in_progress", "the call has ended")
            current = self._by_call.get(row["id"])
            if current and current.view["state"] in LIVE_STATES:
                raise ApiError(409, "calls.supervision_in_progress", "the call has a supervisor")
            number = str(supervisor.get("number") or supervisor.get("identity") or "")
            settings = self.per_number.get(number, self.defaults)
            if label:
                supervisor = {**supervisor, "label": label}
            view = {
                "supervision_id": "sup_" + secrets.token_hex(8),
                "call_id": row["id"],
                "session_id": row.get("session_id"),
                "supervisor_leg_id": None,
                "mode": mode,
                "announce": body.get("announce", "none"),
                "supervisor": supervisor,
                "notify_agent": body.get("notify_agent", True),
                "state": "connecting",
                "connected_at": None,
                "ended_at": None,
                "created_at": utc_iso(),
            }
            sup = _Supervision(view, row["id"], idempotency_key or "", body_hash, settings)
            self._by_call[row["id"]] = sup
            if idempotency_key:
                self._by_key[idempotency_key] = sup
            self._schedule(sup, settings.ring_after, self._ring)
            return 201, dict(view)

    def get(self, call_ident: str) -> dict[str, Any] | None:
        """``GET``: the call's latest supervision, or None."""
        with self._lock:
            row = self._find_call(call_ident)
            if row is None:
                raise ApiError(404, "calls.not_found", "call not found")
            sup = self._by_call.get(row["id"])
            return dict(sup.view) if sup else None

    def patch(self, call_ident: str, mode: Any) -> dict[str, Any]:
        """``PATCH``: switch the mode; 409 while the supervisor is still ringing."""
        if mode not in ("listen", "whisper", "barge"):
            raise ApiError(400, "request.invalid", "mode must be listen, whisper or barge")
        with self._lock:
            sup = self._live(call_ident)
            if sup.view["state"] != "connected":
                raise ApiError(409, "calls.supervision_not_connected", "supervisor still ringing")
            sup.view["mode"] = mode
            return dict(sup.view)

    def delete(self, call_ident: str) -> dict[str, Any] | None:
        """``DELETE``: remove the supervisor (idempotent)."""
        with self._lock:
            row = self._find_call(call_ident)
            if row is None:
                raise ApiError(404, "calls.not_found", "call not found")
            sup = self._by_call.get(row["id"])
            if sup and sup.view["state"] in LIVE_STATES:
                connected = sup.view["state"] == "connected"
                self._finish(sup, "ended", "removed" if connected else "cancelled")
            return dict(sup.view) if sup else None

    def call_ended(self, call_id: str) -> None:
        """The call completed: its supervisor leg ends with it."""
        with self._lock:
            sup = self._by_call.get(call_id)
            if sup and sup.view["state"] in LIVE_STATES:
                self._finish(sup, "ended", "call_ended")

    # -- transitions ------------------------------------------------------------------------

    def _live(self, call_ident: str) -> _Supervision:
        row = self._find_call(call_ident)
        sup = self._by_call.get(row["id"]) if row else None
        if sup is None or sup.view["state"] not in LIVE_STATES:
            raise ApiError(404, "calls.supervision_not_found", "no live supervision")
        return sup

    def _schedule(self, sup: _Supervision, delay: float, action: Callable[[_Supervision], None]):
        def fire() -> None:
            with self._lock:
                if sup.view["state"] in LIVE_STATES:
                    action(sup)

        timer = threading.Timer(max(0.0, delay), fire)
        timer.daemon = True
        sup.timers.append(timer)
        timer.start()

    def _ring(self, sup: _Supervision) -> None:
        if sup.view["state"] != "connecting":
            return
        behaviour = sup.settings.behaviour
        if behaviour == "fail":
            self._finish(sup, "failed", "network_error")
            return
        if behaviour == "busy":
            self._finish(sup, "failed", "busy")
            return
        sup.view["state"] = "ringing"
        sup.view["supervisor_leg_id"] = "leg_" + secrets.token_hex(6)
        self._emit(sup, "call.supervision.ringing")
        self._schedule(sup, sup.settings.ring_timeout, self._ring_timeout)
        if behaviour == "answer":
            self._schedule(sup, sup.settings.answer_after, self._connect)

    def _ring_timeout(self, sup: _Supervision) -> None:
        if sup.view["state"] in ("connecting", "ringing"):
            self._finish(sup, "failed", "no_answer")

    def _connect(self, sup: _Supervision) -> None:
        if sup.view["state"] not in ("connecting", "ringing"):
            return
        sup.view["state"] = "connected"
        sup.view["connected_at"] = utc_iso()
        sup.connected_mono = self._clock()
        self._emit(sup, "call.supervision.connected")

    def _finish(self, sup: _Supervision, state: str, reason: str) -> None:
        for timer in sup.timers:
            timer.cancel()
        sup.view["state"] = state
        sup.view["ended_at"] = utc_iso()
        sup.view["failure_reason"] = reason  # assumed field (see the module docstring)
        if sup.connected_mono is not None:
            seconds = self._clock() - sup.connected_mono
            self._add_leg(sup.call_id, {"to": _target(sup.view), "seconds": seconds})
        self._emit(sup, f"call.supervision.{state}")

    def _emit(self, sup: _Supervision, kind: str) -> None:
        row = self._find_call(sup.call_id) or {}
        data = {**sup.view, "status": sup.view["state"]}
        self._on_event(kind, data, row)


def _target(view: dict[str, Any]) -> str:
    supervisor = view.get("supervisor") or {}
    return str(supervisor.get("number") or supervisor.get("identity") or "")
