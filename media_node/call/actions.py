"""What the core asks its I/O shell to do, in order.

Actions without fields are single instances (`KICK`, ...) so the busiest paths make no object.
The shell carries them out in order: pacer, timer, record and end actions at once, model
commands and closes one at a time through a queue (a frame never overtakes a killAudio).
`WriteHandoff` is answered with a `HandoffWritten` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from media_node.call.state import Outcome, Timer


@dataclass(frozen=True, slots=True)
class KickPacer:
    """Audio was queued on the call's playback (model audio or a pre-rendered line), or a reply
    ended: send the frames that are due and time the next one."""


@dataclass(frozen=True, slots=True)
class InterruptPacer:
    """Playback was cut: frames released but not yet on the socket are not sent."""


@dataclass(frozen=True, slots=True)
class SendKillAudio:
    """Send ``{"type":"killAudio"}``: the platform drops its buffered audio (answer:
    KillAudioSent)."""


@dataclass(frozen=True, slots=True)
class FlushCallerAudio:
    """Send the caller's audio still gathering into a block to the model (the end of a turn)."""


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """Ask the model to speak now, with these instructions for this reply (None: the session's
    own, e.g. to answer a tool's output)."""

    instructions: str | None


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Cancel the model's response in progress."""


@dataclass(frozen=True, slots=True)
class Truncate:
    """Tell the model the caller heard only the first `audio_end_ms` of an item."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class SendFunctionOutput:
    """Answer the model's tool call."""

    call_id: str
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AddSystemMessage:
    """Add a system note to the model's conversation."""

    text: str


@dataclass(frozen=True, slots=True)
class WriteHandoff:
    """Write the handoff to the call record (answer: HandoffWritten).

    ``choose_path``: a transfer the model asked for; the shell looks up what was learned about
    the platform on this number, chooses dial or supervise (`mapokezi.handoff.choose_path`) and
    says which in its answer.
    """

    handoff: dict[str, Any]
    choose_path: bool = False


@dataclass(frozen=True, slots=True)
class UpdateHandoffSummary:
    """Rewrite the summary of the handoff written for the supervised transfer (the caller's
    last words were transcribed after it was written)."""

    summary: str


@dataclass(frozen=True, slots=True)
class StartSupervision:
    """Run the supervised transfer of the written handoff (answers: HandoffProgress events)."""

    handoff: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StopSupervision:
    """The caller left: cancel a supervision still ringing (DELETE) and stop following it."""


@dataclass(frozen=True, slots=True)
class HangUpCall:
    """End the live call on the platform (the person's leg with it) before the socket closes:
    the supervision is followed no more and its end is recorded with `reason`, then the call is
    hung up through the REST API (``POST /v1/calls/{id}/hangup``)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReopenModel:
    """Open a new model session for the call (the person left; the receptionist comes back);
    `earlier` (`prompts.earlier_in_call`) goes into its session instructions."""

    earlier: str = ""


@dataclass(frozen=True, slots=True)
class TakeMessage:
    """Store and publish the caller's message (answer: MessageTaken)."""

    call_id: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CloseModel:
    """Close the model session."""


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close the media socket with this code."""

    code: int = 1000


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire `TimerFired(timer)` at `at` (the core's clock), replacing a pending one."""

    timer: Timer
    at: float


@dataclass(frozen=True, slots=True)
class ClearTimer:
    """Forget a pending timer."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class End:
    """The call is over (always the last action).

    The shell stops reading, lets the model commands and closes still queued finish (within a
    bound), closes whatever is still open, and writes the call's end to the call record (media
    outcome, transcript, metrics) from `CallCore.final_record`, taken then so that it counts
    every frame up to the close.
    """

    outcome: Outcome


KICK = KickPacer()
INTERRUPT = InterruptPacer()
KILL_AUDIO = SendKillAudio()
FLUSH_CALLER_AUDIO = FlushCallerAudio()
CANCEL_RESPONSE = CancelResponse()
CLOSE_MODEL = CloseModel()
STOP_SUPERVISION = StopSupervision()

Action = (
    KickPacer
    | InterruptPacer
    | SendKillAudio
    | FlushCallerAudio
    | CreateResponse
    | CancelResponse
    | Truncate
    | SendFunctionOutput
    | AddSystemMessage
    | WriteHandoff
    | UpdateHandoffSummary
    | StartSupervision
    | StopSupervision
    | HangUpCall
    | ReopenModel
    | TakeMessage
    | CloseModel
    | CloseSocket
    | SetTimer
    | ClearTimer
    | End
)
