"""What the Realtime double's "model" hears and says: scripts and the responder hook.

The double cannot recognise speech or think, so a *responder* supplies both halves:

- ``transcribe(state, turn_index)`` -> what the caller said in their ``turn_index``-th audio
  turn (0-based); sent as ``conversation.item.input_audio_transcription.completed`` when the
  session enables input transcription.
- ``respond(state, trigger)`` -> the :class:`Reply` for a response that is starting.

:class:`Script` is the stock responder: a greeting, then one :class:`Turn` per caller turn
(what the caller said, and the reply), a fallback when the turns run out, a follow-up after a
function's output comes back and a re-prompt after an idle timeout. Anything with the same two
methods can replace it (an offline model for the local stack, say), receiving the session
state and the trigger on every call.

A reply's audio defaults to :func:`~doubles.openai_realtime.audio.synthesize_speech` of its
text; real PCM (24 kHz mono PCM16 bytes, an iterable of chunks, or a WAV file through
:meth:`Reply.from_wav`) can be supplied instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from doubles.openai_realtime.audio import load_wav, synthesize_speech

__all__ = [
    "FunctionCall",
    "FunctionOutput",
    "Reply",
    "Responder",
    "Script",
    "SessionState",
    "Trigger",
    "Turn",
    "as_responder",
]

TriggerKind = Literal["greeting", "user_audio", "user_text", "function_output", "idle_timeout"]

_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")


@dataclass(frozen=True)
class FunctionCall:
    """A function call the model makes.

    Attributes:
        name: Function name (should match a tool declared in the session).
        arguments: JSON string, or a mapping that is JSON-encoded.
        call_id: Fixed ``call_…`` id; generated when ``None``.
        follow_up: What to say once the client returns the function's output and sends
            ``response.create`` (the script's ``function_follow_up`` when ``None``).
    """

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    call_id: str | None = None
    follow_up: Reply | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string the API streams."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class Reply:
    """One response: optional speech, then optionally a function call.

    Attributes:
        text: Transcript of the speech ("" with no audio and a function call: call only).
        audio: 24 kHz mono PCM16 bytes or an iterable of chunks (a generator is consumed
            when the response starts); ``None`` synthesises speech from ``text``.
        function_call: A function call item streamed after the speech.
        ms_per_char: Length of synthesised speech per character of ``text``.
    """

    text: str = ""
    audio: bytes | Iterable[bytes] | None = None
    function_call: FunctionCall | None = None
    ms_per_char: float = 60.0

    @classmethod
    def from_wav(cls, path: str | Path, text: str = "", **kwargs: Any) -> Reply:
        """A reply speaking a WAV file (converted to 24 kHz mono PCM16)."""
        return cls(text=text, audio=load_wav(path), **kwargs)

    @property
    def speaks(self) -> bool:
        """Whether the reply has a spoken message item."""
        return bool(self.text) or self.audio is not None or self.function_call is None

    def pcm(self) -> bytes:
        """The reply's speech as 24 kHz mono PCM16 bytes."""
        if self.audio is None:
            return synthesize_speech(self.text, ms_per_char=self.ms_per_char)
        if isinstance(self.audio, bytes | bytearray):
            return bytes(self.audio)
        return b"".join(self.audio)


@dataclass(frozen=True)
class Turn:
    """One caller turn: what they said, and the reply to it."""

    said: str
    reply: Reply


@dataclass(frozen=True)
class FunctionOutput:
    """A ``function_call_output`` item the client created."""

    item_id: str
    call_id: str
    output: str

    def json(self) -> Any:
        """The output parsed as JSON (clients should JSON-encode objects)."""
        return json.loads(self.output)


@dataclass(frozen=True)
class Trigger:
    """Why a response is starting.

    ``kind`` is ``"greeting"`` before any caller audio turn (also for a response to a
    text-only seed such as "Greet the caller"), ``"user_audio"`` after a caller turn
    (``turn_index``, ``said``), ``"user_text"`` after a user text item once the call has
    started (``text``), ``"function_output"`` after a ``function_call_output`` (``function_call``
    is the call it answers, ``function_output`` the output) and ``"idle_timeout"``.
    ``instructions`` holds ``response.instructions`` when the client sent them.
    """

    kind: TriggerKind
    instructions: str | None = None
    turn_index: int | None = None
    said: str | None = None
    text: str | None = None
    function_call: FunctionCall | None = None
    function_output: FunctionOutput | None = None


class SessionState(Protocol):
    """Read-only view of a session offered to responders."""

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def caller_turns(self) -> int: ...

    @property
    def conversation(self) -> Sequence[dict[str, Any]]: ...

    @property
    def function_outputs(self) -> Sequence[FunctionOutput]: ...


class Responder(Protocol):
    """Supplies transcripts of caller turns and replies to triggers."""

    def transcribe(self, state: SessionState, turn_index: int) -> str: ...

    def respond(self, state: SessionState, trigger: Trigger) -> Reply: ...


RespondFunction = Callable[[SessionState, Trigger], Reply]


@dataclass(frozen=True)
class _FunctionResponder:
    respond_with: RespondFunction

    def transcribe(self, state: SessionState, turn_index: int) -> str:
        return ""

    def respond(self, state: SessionState, trigger: Trigger) -> Reply:
        return self.respond_with(state, trigger)


def as_responder(value: Responder | RespondFunction) -> Responder:
    """Accept a responder, or a bare ``respond(state, trigger) -> Reply`` function.

    A bare function has nothing to say about what the caller said: transcripts are "".
    """
    if hasattr(value, "respond") and hasattr(value, "transcribe"):
        return value  # type: ignore[return-value]
    return _FunctionResponder(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Script:
    """A fixed conversation: greeting, caller turns in order, fallbacks.

    A greeting whose ``response.instructions`` quote a sentence (``Say "Karibu!"``) speaks that
    sentence instead of :attr:`greeting`, which keeps per-response instructions observable.
    """

    greeting: Reply = Reply("Hello, thank you for calling. How can I help you today?")
    turns: Sequence[Turn] = field(default_factory=tuple)
    fallback: Reply = Reply("Sorry, could you say that again?")
    function_follow_up: Reply = Reply("All right.")
    idle_prompt: Reply = Reply("Are you still there?")

    def transcribe(self, state: SessionState, turn_index: int) -> str:
        """What the caller said in turn ``turn_index`` ("" beyond the script)."""
        return self.turns[turn_index].said if turn_index < len(self.turns) else ""

    def respond(self, state: SessionState, trigger: Trigger) -> Reply:
        """The scripted reply for ``trigger``."""
        if trigger.kind == "greeting":
            quoted = _QUOTED.search(trigger.instructions or "")
            return Reply(quoted.group(1)) if quoted else self.greeting
        if trigger.kind == "user_audio" and trigger.turn_index is not None:
            if trigger.turn_index < len(self.turns):
                return self.turns[trigger.turn_index].reply
            return self.fallback
        if trigger.kind == "user_text":
            wanted = (trigger.text or "").strip().lower()
            for turn in self.turns:
                if turn.said.strip().lower() == wanted:
                    return turn.reply
            return self.fallback
        if trigger.kind == "function_output":
            follow_up = trigger.function_call.follow_up if trigger.function_call else None
            return follow_up or self.function_follow_up
        if trigger.kind == "idle_timeout":
            return self.idle_prompt
        return self.fallback
