"""Putting a caller through to a person: the strategy, the supervision's life, the record.

Pure (no I/O, no clock of its own): the media node and the Lambda rescue feed it what happened
with the time it happened, and act on the decisions it returns.

Strategies (profile ``handoff.strategy``):

- ``dial``: close the media stream; the voice webhook answers the platform's re-POST with
  ``<Say>`` + ``<Dial>``.
- ``supervise``: keep the stream, play hold audio, and ask the platform for a ``barge``
  supervision of the live call with the person's phone (``reference/sautikit.md`` §1.10b).
- ``auto`` (default): ``dial`` until the number has shown that the platform does not re-POST
  after a stream (the Lambda then rescues the caller with a supervision and remembers it), after
  which its handoffs use ``supervise`` straight away.

:class:`SupervisionTracker` follows one supervision: the platform's states (from polling with
backoff and from the events it posts) and errors in, decisions out — poll again, record a state
change, the person is connected, the person left, nobody is available (ring timeout, busy, no
answer, failure, 409, 403, …). Every state change is recorded with its time; the record's
``handoff`` section carries ``path``, ``state``, ``changes``, ``supervision_id`` and
``time_to_person_ms``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Strategy(StrEnum):
    """A profile's ``handoff.strategy``."""

    AUTO = "auto"
    SUPERVISE = "supervise"
    DIAL = "dial"


class HandoffPath(StrEnum):
    """How a transfer reaches the person (``handoff.path`` on the record)."""

    DIAL = "dial"
    """The stream closes; the voice webhook answers the platform's re-POST with a ``<Dial>``."""
    SUPERVISE = "supervise"
    """The stream stays: hold audio while the node rings the person in as a supervisor."""
    RESCUE = "rescue"
    """The stream stopped and the platform never came back: the Lambda side rang the person."""


class Learned(StrEnum):
    """What the platform was seen to do after a ``<Stream>`` ended on a number."""

    REPOSTS = "reposts"
    NO_REPOST = "no_repost"


class HandoffState(StrEnum):
    """``handoff.state`` on the record; outcomes.py reads the terminal ones."""

    PENDING = "pending"
    DIALLED = "dialled"
    STRANDED = "stranded"
    REQUESTED = "requested"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


# The members under the names the rest of the code reads them by.
STRATEGY_AUTO, STRATEGY_SUPERVISE, STRATEGY_DIAL = Strategy.AUTO, Strategy.SUPERVISE, Strategy.DIAL
STRATEGIES = tuple(Strategy)
PATH_DIAL, PATH_SUPERVISE, PATH_RESCUE = HandoffPath
LEARNED_REPOSTS, LEARNED_NO_REPOST = Learned.REPOSTS, Learned.NO_REPOST
REQUESTED, RINGING, CONNECTED = HandoffState.REQUESTED, HandoffState.RINGING, HandoffState.CONNECTED
ENDED, NO_ANSWER, BUSY, FAILED = (
    HandoffState.ENDED,
    HandoffState.NO_ANSWER,
    HandoffState.BUSY,
    HandoffState.FAILED,
)
TERMINAL = frozenset({ENDED, NO_ANSWER, BUSY, FAILED})

#: The states each step of a supervision may follow. The node (polling) and the events function
#: (the platform's supervision events) both report the same steps; a step whose state is not
#: in its set here was already recorded by the other writer, or comes after a later one, and is
#: not recorded again (the store's ``record_handoff_change``). A new handoff starts over.
STEP_FOLLOWS: Mapping[str, frozenset[str]] = {
    RINGING: frozenset({REQUESTED}),
    CONNECTED: frozenset({REQUESTED, RINGING}),
    **{state: frozenset({REQUESTED, RINGING, CONNECTED}) for state in TERMINAL},
}

DEFAULT_RESCUE_GRACE_SECONDS = 2.0
#: The reason recorded when the supervision ends because the caller hung up.
CALLER_HANGUP = "caller_hangup"
#: The reason recorded when the caller and the person talked for ``max_bridged_seconds``.
BRIDGED_LIMIT = "bridged_limit"
#: How long a caller and the person reached may talk before the call is ended (one hour).
DEFAULT_MAX_BRIDGED_SECONDS = 3600


def choose_path(strategy: str, learned: str | None) -> HandoffPath:
    """``dial`` or ``supervise`` for the next handoff on a number.

    Args:
        strategy: the profile's ``handoff.strategy``.
        learned: what the number has shown (:data:`LEARNED_REPOSTS`, :data:`LEARNED_NO_REPOST`
            or None when nothing is known yet).
    """
    if strategy == STRATEGY_SUPERVISE:
        return PATH_SUPERVISE
    if strategy == STRATEGY_DIAL:
        return PATH_DIAL
    if strategy != STRATEGY_AUTO:
        raise ValueError(f"unknown handoff strategy {strategy!r}")
    return PATH_SUPERVISE if learned == LEARNED_NO_REPOST else PATH_DIAL


def rescue_allowed(strategy: str) -> bool:
    """Whether a stream that stopped without a re-POST may be rescued from the Lambda side."""
    return strategy == STRATEGY_AUTO


def idempotency_key(call_id: str, handoff_id: str) -> str:
    """The ``Idempotency-Key`` of a handoff's supervision: retries (from the node, or a rescue
    retried by SQS) replay one supervision instead of ringing the person twice."""
    digest = hashlib.sha256(f"{call_id}\n{handoff_id}".encode()).hexdigest()
    return f"mapokezi-handoff-{digest[:40]}"


def iso_at(at: float) -> str:
    """Epoch seconds as the record's ISO-8601 UTC timestamp (milliseconds, ``Z``)."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_change(state: str, at: float, reason: str | None = None) -> dict[str, Any]:
    """One entry of ``handoff.changes``: ``{state, at, reason?}``."""
    change: dict[str, Any] = {"state": state, "at": iso_at(at)}
    if reason:
        change["reason"] = reason[:200]
    return change


def last_requested_at(changes: list[Mapping[str, Any]]) -> float | None:
    """Epoch seconds of the last ``requested`` change, or None."""
    return last_change_at(changes, REQUESTED)


def last_change_at(changes: list[Mapping[str, Any]], state: str) -> float | None:
    """Epoch seconds of the last change to ``state``, or None."""
    times = [c.get("at") for c in changes if c.get("state") == state and c.get("at")]
    if not times:
        return None
    try:
        return datetime.fromisoformat(str(times[-1]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def time_to_person_ms(changes: list[Mapping[str, Any]], connected_at: float) -> int | None:
    """Milliseconds from the last ``requested`` change to ``connected_at`` (epoch seconds)."""
    start = last_requested_at(changes)
    return None if start is None else max(0, round((connected_at - start) * 1000))


def person_leg_cost(cdr: Mapping[str, Any]) -> dict[str, Any] | None:
    """The person's leg from a platform CDR's events, when the CDR has it.

    Looks for a ``supervision.completed`` or ``dial.completed`` event carrying ``cost_minor``;
    returns ``{cost_minor, duration_seconds, to}`` or None.
    """
    for event in cdr.get("events") or []:
        if not isinstance(event, Mapping):
            continue
        payload = event.get("payload") or {}
        if event.get("kind") in ("supervision.completed", "dial.completed") and isinstance(
            payload.get("cost_minor"), int
        ):
            return {
                "cost_minor": payload["cost_minor"],
                "duration_seconds": payload.get("duration_seconds"),
                "to": payload.get("to"),
            }
    return None


# -- the supervision's life -----------------------------------------------------------------


@dataclass(frozen=True)
class SupervisionPolicy:
    """Timings of one supervision attempt (seconds).

    The platform's supervision events reach only the events function, so the node follows the
    supervision by polling it. While the person is rung the caller hears the hold loop, so a
    poll every two seconds at most is enough to cut it soon after the answer; once connected a
    poll every ``connected_poll`` bounds how long the caller may sit in silence after the person
    leaves (the hold loop starts as soon as the node knows).
    """

    ring_timeout: float = 30.0
    first_poll: float = 0.5
    poll_backoff: float = 1.5
    max_poll: float = 2.0
    connected_poll: float = 0.75
    start_retries: int = 2

    @classmethod
    def for_profile(cls, dial_timeout_seconds: int) -> SupervisionPolicy:
        """The policy with the profile's ring timeout."""
        return cls(ring_timeout=float(dial_timeout_seconds))


@dataclass(frozen=True)
class Poll:
    """Ask the platform for the supervision's state now (GET /supervision)."""


@dataclass(frozen=True)
class Retry:
    """Send the POST again now, with the same Idempotency-Key (after a transient error)."""


@dataclass(frozen=True)
class Record:
    """Write this state change (and ``fields``) to the call's handoff."""

    change: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PersonConnected:
    """The person is on the call: introduce the caller, then close the model session."""

    time_to_person_ms: int


@dataclass(frozen=True)
class PersonLeft:
    """The person left while the caller stayed: the receptionist comes back."""


@dataclass(frozen=True)
class NobodyAvailable:
    """Nobody came: the receptionist comes back, says so and offers to take a message."""

    reason: str


@dataclass(frozen=True)
class CancelSupervision:
    """Remove the supervisor leg still ringing (DELETE /supervision)."""


Decision = (
    Poll | Retry | Record | PersonConnected | PersonLeft | NobodyAvailable | CancelSupervision
)


def error_outcome(status: int | None, code: str) -> tuple[str, str] | None:
    """The (state, reason) a failed POST ends in, or None when it is worth retrying."""
    if code.startswith("config."):
        return FAILED, code  # e.g. no API key configured: retrying cannot help
    if status is None or status >= 500 or code == "response.malformed":
        return None
    if code == "calls.supervision_in_progress":
        return FAILED, "supervision_in_progress"
    if status == 403:
        return FAILED, "scope_denied"  # the key lacks calls.supervise
    if status == 404:
        return FAILED, "call_not_found"
    return FAILED, code or f"http_{status}"


def platform_outcome(state: str, reason: str | None, was_connected: bool) -> tuple[str, str]:
    """The handoff state for a platform state that ends the supervision."""
    text = (reason or "").lower()
    if state == "ended" and was_connected:
        return ENDED, reason or "supervisor_left"
    if "busy" in text:
        return BUSY, reason or "busy"
    if state == "ended" or "no_answer" in text or "noanswer" in text or "timeout" in text:
        return NO_ANSWER, reason or "ended_before_answer"
    return FAILED, reason or "failed"


class SupervisionTracker:
    """One supervision attempt, from the POST to its end, on the caller's explicit clock.

    Feed it :meth:`started`, :meth:`start_failed`, :meth:`observed` (a polled or posted
    platform state), :meth:`poll_failed`, :meth:`caller_left` and, whenever ``next_deadline``
    passes, :meth:`tick` (which asks for a :class:`Poll`, a :class:`Retry` of the POST, or ends
    the attempt at the ring timeout). Each returns the decisions to act on, in order.
    """

    def __init__(
        self,
        requested_at: float,
        policy: SupervisionPolicy | None = None,
        *,
        asked_at: float | None = None,
    ) -> None:
        """``requested_at`` starts the ring timeout; ``asked_at`` (default the same) is when
        the transfer was asked for, its ``requested`` change, from which the time to a person
        counts, as the events function counts it from the record."""
        self.policy = policy or SupervisionPolicy()
        self.requested_at = requested_at
        self.asked_at = requested_at if asked_at is None else asked_at
        self.state: str = REQUESTED
        self.supervision_id: str | None = None
        self.connected_at: float | None = None
        self._attempts = 1
        self._poll_interval = self.policy.first_poll
        self._poll_at: float | None = None
        self._retry_at: float | None = None

    @classmethod
    def resume(
        cls,
        requested_at: float,
        state: str,
        supervision_id: str | None,
        policy: SupervisionPolicy | None = None,
        *,
        attempts: int = 1,
    ) -> SupervisionTracker:
        """A tracker picked up from the record (a later invocation following the same attempt).

        Timers of polls are not carried over: the caller polls once per resumption.
        """
        tracker = cls(requested_at, policy)
        known = {REQUESTED, RINGING, CONNECTED, *TERMINAL}
        tracker.state = state if state in known else REQUESTED
        tracker.supervision_id = supervision_id
        tracker._attempts = attempts
        return tracker

    @property
    def attempts(self) -> int:
        """POSTs sent so far (the first one and its retries)."""
        return self._attempts

    @property
    def finished(self) -> bool:
        """Whether the attempt is over (connected-then-ended, or never connected)."""
        return self.state in TERMINAL

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run next; None once finished."""
        if self.finished:
            return None
        times = [t for t in (self._poll_at, self._retry_at) if t is not None]
        if self.state != CONNECTED:
            times.append(self.requested_at + self.policy.ring_timeout)
        return min(times) if times else None

    def requested(self) -> list[Decision]:
        """The first decision: record that a person was asked for."""
        return [Record(state_change(REQUESTED, self.requested_at))]

    def started(self, now: float, supervision_id: str, state: str) -> list[Decision]:
        """The POST answered with a supervision in ``state``."""
        self._retry_at = None
        out: list[Decision] = []
        if self.supervision_id != supervision_id:
            self.supervision_id = supervision_id
            out.append(Record({}, {"supervision_id": supervision_id}))
        return out + self.observed(now, state)

    def start_failed(self, now: float, status: int | None, code: str) -> list[Decision]:
        """The POST failed; transient failures are retried (same key) a few times."""
        if self.finished:
            return []
        ending = error_outcome(status, code)
        if ending is None and self._attempts <= self.policy.start_retries:
            self._attempts += 1
            self._retry_at = now + self.policy.first_poll * self._attempts
            return []
        state, reason = ending or (FAILED, f"platform_error:{code}")
        return self._finish(now, state, reason)

    def observed(self, now: float, state: str, reason: str | None = None) -> list[Decision]:
        """The platform says the supervision is in ``state`` (polled, or from an event)."""
        if self.finished:
            return []
        out: list[Decision] = []
        if state == "ringing" and self.state == REQUESTED:
            self.state = RINGING
            out.append(Record(state_change(RINGING, now)))
        elif state == "connected" and self.state != CONNECTED:
            self.state = CONNECTED
            self.connected_at = now
            ms = max(0, round((now - self.asked_at) * 1000))
            out += [Record(state_change(CONNECTED, now), {"time_to_person_ms": ms})]
            out.append(PersonConnected(ms))
        elif state in ("ended", "failed"):
            handoff_state, why = platform_outcome(state, reason, self.state == CONNECTED)
            return self._finish(now, handoff_state, why)
        self._schedule_poll(now)
        return out

    def gone(self, now: float) -> list[Decision]:
        """A GET said the call has no supervision any more."""
        return self.observed(now, "ended", "supervision_removed")

    def poll_failed(self, now: float, status: int | None, code: str) -> list[Decision]:
        """A GET failed: keep polling on transient errors, give up when it cannot work."""
        if self.finished:
            return []
        if status is not None and status < 500 and status != 429:
            state = ENDED if self.state == CONNECTED else FAILED
            return self._finish(now, state, f"lost:{code}")
        self._schedule_poll(now)
        return []

    def tick(self, now: float) -> list[Decision]:
        """Run the timers: the ring timeout, a due retry of the POST, a due poll."""
        if self.finished:
            return []
        if self.state != CONNECTED and now >= self.requested_at + self.policy.ring_timeout:
            return [CancelSupervision(), *self._finish(now, NO_ANSWER, "ring_timeout")]
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            return [Retry()]
        if self._poll_at is not None and now >= self._poll_at:
            self._poll_at = None
            return [Poll()]
        return []

    def caller_left(self, now: float, reason: str = CALLER_HANGUP) -> list[Decision]:
        """The call is over (the caller hung up, or the node ended it for `reason`): the
        supervision ends with it; nobody needs telling."""
        if self.finished:
            return []
        cancel: list[Decision] = [] if self.state == CONNECTED else [CancelSupervision()]
        state = ENDED if self.state == CONNECTED else FAILED
        return [*cancel, *self._finish(now, state, reason, tell=False)]

    def _schedule_poll(self, now: float) -> None:
        if self.state == CONNECTED:
            interval = self.policy.connected_poll  # only to notice the person leaving
        else:
            interval = self._poll_interval
            self._poll_interval = min(self.policy.max_poll, interval * self.policy.poll_backoff)
        self._poll_at = now + interval

    def _finish(self, now: float, state: str, reason: str, *, tell: bool = True) -> list[Decision]:
        was_connected = self.state == CONNECTED
        self.state = state
        self._poll_at = self._retry_at = None
        out: list[Decision] = [Record(state_change(state, now, reason))]
        if tell:
            out.append(PersonLeft() if was_connected else NobodyAvailable(reason))
        return out
