"""What happens to a call, as the core is told about it (with ``now``, monotonic seconds).

The model's normalised events (`media_node.models.base`) are events of the core as they are.
Two things happen about 50 times a second per call and are not events here, so that no object
is made for them: a caller frame arriving (`CallCore.caller_frame`) and a frame released by the
pacer (`CallCore.frame_released`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from websockets.frames import Close

from mapokezi.handoff import HandoffPath
from media_node.call.state import ClosedBy, Timer
from media_node.inbound import DecodePlan
from media_node.models.base import ModelEvent

ABNORMAL_CLOSURE = 1006
"""The code that stands for a connection that ended without a close frame (never sent)."""


@dataclass(frozen=True, slots=True)
class Connected:
    """The media socket was accepted; the call's clock starts."""


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The first frame arrived: how the caller is decoded, and the metadata frame if one came.

    Attributes:
        plan: The decoding chosen by `media_node.inbound.decode_plan`.
        metadata: The metadata frame's JSON object; None without one (or if it was not JSON).
        problems: What was odd about the metadata frame, for the log.
    """

    plan: DecodePlan
    metadata: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    """A caller frame too large to decode was dropped."""

    detail: str


@dataclass(frozen=True, slots=True)
class SocketClosed:
    """The media socket is closed.

    Attributes:
        code: The close code: the peer's when it sent a close frame first, the node's when the
            node did, 1006 when no close frame was exchanged.
        reason: The close reason that came with `code` ("" if none).
        by: Who closed it.
    """

    code: int
    reason: str
    by: ClosedBy

    @classmethod
    def from_frames(
        cls, received: Close | None, sent: Close | None, received_first: bool | None
    ) -> SocketClosed:
        """Who closed the socket, from the close frames exchanged (websockets' protocol state).

        Args:
            received: The peer's close frame, if one came.
            sent: The node's close frame, if one went out (websockets sends 1011 itself when a
                keepalive ping gets no pong).
            received_first: Whether the peer's frame came before the node's.
        """
        if received is not None and (sent is None or received_first):
            return cls(received.code, received.reason, ClosedBy.PEER)
        if sent is not None:
            return cls(sent.code, sent.reason, ClosedBy.NODE)
        return cls(ABNORMAL_CLOSURE, "no close frame", ClosedBy.NETWORK)


@dataclass(frozen=True, slots=True)
class ModelConnected:
    """The model session is open: its events follow, and it takes commands."""


@dataclass(frozen=True, slots=True)
class ModelConnectFailed:
    """The model session could not be opened."""

    detail: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core set (`media_node.call.actions.SetTimer`) is due."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class HandoffWritten:
    """A `WriteHandoff` finished (``ok`` False: the write failed, which was logged).

    ``path`` is how the transfer reaches the person when the write chose one (`supervise`: the
    shell asked for it to be written with ``state="requested"``); None: the dial path.
    """

    ok: bool
    path: HandoffPath | None = None


@dataclass(frozen=True, slots=True)
class HandoffProgress:
    """What the supervised transfer reached (`media_node.supervision.SupervisedTransfer`).

    ``state``: ``connected`` (``time_to_person_ms`` set), ``person_left``, or ``nobody`` (with
    the ``reason``: ring_timeout, busy, no_answer, a refusal, …).
    """

    state: str
    reason: str = ""
    time_to_person_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MessageTaken:
    """A `TakeMessage` finished; ``output`` is what `media_node.messages.take_message` returned."""

    call_id: str
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KillAudioSent:
    """The killAudio command of a barge-in went out on the socket."""


@dataclass(frozen=True, slots=True)
class DrainRequested:
    """The node is shutting down: the call must be over by `deadline` (the core's clock)."""

    deadline: float


@dataclass(frozen=True, slots=True)
class InternalError:
    """Something in the node failed for this call (logged where it happened)."""

    detail: str


CallEvent = (
    Connected
    | StreamStarted
    | OversizedFrame
    | SocketClosed
    | ModelConnected
    | ModelConnectFailed
    | TimerFired
    | HandoffWritten
    | HandoffProgress
    | MessageTaken
    | KillAudioSent
    | DrainRequested
    | InternalError
    | ModelEvent
)
