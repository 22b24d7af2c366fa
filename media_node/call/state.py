"""The names a call's core decides with: its state, ending phases, outcomes, reasons, timers.

Every value is a `StrEnum`, so what reaches the call record and the logs is exactly the string
written here (``Outcome.CALLER_HANGUP == "caller_hangup"``).

How the states follow each other (all transitions are in `media_node.call.core.CallCore`)::

    GREETING ──first response done──▶ LISTENING ◀──playout over──▶ REPLYING
        │  (caller speaks, model replies, barge-in: all three states are "talking")
        └──────────── tool call, deadline, model failure, drain ──────────▶ ENDING ──▶ ENDED
    any state ── media socket closed by the caller or broken ──▶ ENDED

ENDING runs through `EndingPhase` in order, skipping what an ending does not need. A transfer
that keeps the media socket while a person is rung adds states after the handoff is written
(`media_node.call.supervised`)::

    ENDING (line played) ──supervise──▶ HOLDING ──connected──▶ BRIDGED (introduction, model closed)
                                           └──nobody──▶ LISTENING     └──person left──▶ GREETING
                                                                          (a new model session)
"""

from __future__ import annotations

from enum import StrEnum

from mapokezi import handoff
from media_node import assets


class CallState(StrEnum):
    """Where a call is."""

    GREETING = "greeting"
    """Connected; the model is greeting the caller (or still connecting)."""
    LISTENING = "listening"
    """The caller's turn: no response in progress, nothing left to play."""
    REPLYING = "replying"
    """A response is in progress, or its audio is still playing to the caller."""
    ENDING = "ending"
    """An ending runs (see `EndingPhase`); the caller's audio no longer reaches the model."""
    HOLDING = "holding"
    """A supervised transfer rings a person: the hold loop plays; the model session stays open
    but gets no caller audio (nothing the caller says while holding is answered)."""
    BRIDGED = "bridged"
    """The person is on the call: after the receptionist's one-sentence introduction the model
    session is closed and the node stays on the media socket, silent, until the call ends or
    the profile's ``handoff.max_bridged_seconds`` pass (then the node hangs the call up)."""
    ENDED = "ended"
    """Over; nothing more happens."""


TALKING = frozenset({CallState.GREETING, CallState.LISTENING, CallState.REPLYING})
"""States in which caller audio goes to the model and barge-in applies."""


class EndingPhase(StrEnum):
    """Steps of an ending, in order."""

    WRITING_HANDOFF = "writing_handoff"
    """The handoff goes to the call record; nothing else may happen before it is there."""
    WAITING_LINE = "waiting_line"
    """The model says a short handoff line (after any response in progress has ended)."""
    PLAYING_LINE = "playing_line"
    """A pre-rendered line, or the model's line, plays out to the caller."""
    FINISHING = "finishing"
    """The summary is rewritten with the caller's late words; the platform's buffer drains."""
    CLOSING = "closing"
    """The model session and the media socket are closed."""


class EndingKind(StrEnum):
    """Who speaks the last line of an ending."""

    LINE = "line"
    """A pre-rendered line (apology, length limit, drain); model audio is cut."""
    SPOKEN = "spoken"
    """The model says a short line (after a tool call, or the idle goodbye)."""


class ModelLink(StrEnum):
    """Where the call's model session is."""

    CONNECTING = "connecting"
    OPEN = "open"
    """Connected: it takes caller audio and commands."""
    GONE = "gone"
    """Failed to connect, failed, or closed: it will not speak again in this call."""


class Outcome(StrEnum):
    """How the media leg ended (the call record's ``media.outcome``)."""

    TRANSFER = "transfer"
    HANGUP = "hangup"
    CALLER_HANGUP = "caller_hangup"
    STREAM_LOST = "stream_lost"
    """The media socket broke (no clean close from the caller's side): the caller may still be on
    the line, so the webhook's answer after the stream stops decides what they hear."""
    FAILED = "failed"
    DRAINED = "drained"
    MAX_DURATION = "max_duration"
    IDLE = "idle"


class Reason(StrEnum):
    """Handoff reasons the node sets itself (a tool call's reason is the model's own text)."""

    MODEL_UNAVAILABLE = "model_unavailable"
    NODE_DRAINING = "node_draining"
    MAX_DURATION = "max_duration"
    IDLE = "idle"
    BRIDGED_LIMIT = handoff.BRIDGED_LIMIT
    """The caller and the person talked for the profile's ``handoff.max_bridged_seconds``."""


class HandoffKind(StrEnum):
    """What the webhook does with the handoff once the stream has stopped."""

    TRANSFER = "transfer"
    HANGUP = "hangup"


class Line(StrEnum):
    """Pre-rendered lines (`media_node.assets`)."""

    APOLOGY = assets.APOLOGY
    DRAIN = assets.DRAIN
    TIME_LIMIT = assets.TIME_LIMIT


class Timer(StrEnum):
    """Named timers the core sets; at most one of each is pending."""

    WATCHDOG = "watchdog"
    """The next dead-air deadline, or when playout ends and silence starts."""
    HANDOFF_LINE = "handoff_line"
    """Bound on the model's handoff line."""
    PLAYOUT = "playout"
    """Look again whether the last line has played out."""
    CLOSE_MARGIN = "close_margin"
    """The platform's playout buffer has drained: close."""
    DRAIN_START = "drain_start"
    """The node drains: time to start the drain line."""
    DRAIN_DEADLINE = "drain_deadline"
    """The node drains: the call must be over now."""
    HOLD_REFILL = "hold_refill"
    """Queue the next round of the hold loop before the current one runs out."""
    INTRODUCTION = "introduction"
    """Bound on the introduction (and look again whether it has played out)."""
    BRIDGED_LIMIT = "bridged_limit"
    """The caller and the person have talked as long as the profile allows: end the call."""


class ClosedBy(StrEnum):
    """Which side ended the media socket (the call record's ``media.close.by``)."""

    PEER = "peer"
    """Sautikit sent a close frame."""
    NODE = "node"
    """The node sent the first close frame (its own ending, or a failed keepalive ping)."""
    NETWORK = "network"
    """No close frame came: the connection was reset or vanished (1006)."""
