"""The model adapter interface: what a call needs from a speech-to-speech model session.

A call speaks to the model only through `ModelSession` and reads only the normalised events
below, so another provider (Gemini Live) is a new adapter and leaves the socket and audio code
untouched. Audio crosses the interface as 16-bit little-endian mono PCM at the adapter's own
`input_rate`/`output_rate`; the call resamples to and from the telephony rate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from mapokezi.profiles import Profile


class ModelUnavailableError(Exception):
    """The model session could not be opened (refused, timed out, bad credentials)."""


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The session is configured (the greeting may be requested)."""


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A chunk of reply audio for one output item, PCM at the adapter's `output_rate`."""

    response_id: str
    item_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class AudioDone:
    """The item's audio is complete (also sent when its response was cancelled)."""

    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """More text of what the model is generating for an audio item (kept if the call ends early)."""

    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptDone:
    """The full text of what the model generated for an audio item."""

    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The model's VAD heard the caller start speaking (the barge-in trigger)."""

    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The model's VAD heard the caller stop speaking; a reply is expected."""

    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallerTranscript:
    """The transcription of one caller turn (approximate; arrives in no fixed order)."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The model began a response."""

    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended: ``completed``, ``cancelled``, ``failed`` or ``incomplete``."""

    response_id: str
    status: str
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The model called a tool; `arguments` is the decoded JSON object ({} if malformed)."""

    response_id: str
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelError:
    """An error reported by the model; `fatal` errors end the model's part of the call."""

    code: str
    message: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class ModelClosed:
    """The model session's connection ended (always the last event)."""

    code: int | None = None
    reason: str = ""


ModelEvent = (
    SessionReady
    | AudioDelta
    | AudioDone
    | TranscriptDelta
    | TranscriptDone
    | SpeechStarted
    | SpeechStopped
    | CallerTranscript
    | ResponseStarted
    | ResponseDone
    | FunctionCall
    | ModelError
    | ModelClosed
)


class ModelSession(ABC):
    """One live session with a speech-to-speech model, for one call.

    Lifecycle: `connect()` once, then read `events()` until `ModelClosed` while calling the
    commands; `aclose()` at the end (idempotent). Commands after the connection ended are
    silently dropped: the call learns of the end from `ModelClosed`.
    """

    input_rate: int
    """Sample rate of the PCM given to `send_audio`."""
    output_rate: int
    """Sample rate of the PCM in `AudioDelta`."""
    supports_truncate: bool = True
    """Whether `cancel_response` and `truncate` do anything. Gemini Live has neither: its server
    drops an interrupted reply itself, and both commands are no-ops there."""

    @abstractmethod
    async def connect(self) -> None:
        """Opens the connection and sends the session configuration.

        Raises:
            ModelUnavailableError: If the connection cannot be opened.
        """

    @abstractmethod
    def events(self) -> AsyncIterator[ModelEvent]:
        """The session's events, ending with exactly one `ModelClosed`."""

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None:
        """Appends caller audio (PCM at `input_rate`)."""

    @abstractmethod
    async def create_response(self, instructions: str | None = None) -> None:
        """Asks the model to speak now; `instructions` replace the session's for this reply."""

    @abstractmethod
    async def cancel_response(self) -> None:
        """Cancels the response in progress (harmless if none is)."""

    @abstractmethod
    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Tells the model the caller heard only the first `audio_end_ms` of an item."""

    @abstractmethod
    async def send_function_output(self, call_id: str, output: dict[str, Any]) -> None:
        """Answers a `FunctionCall` (does not start a response)."""

    @abstractmethod
    async def add_system_message(self, text: str) -> None:
        """Adds a system note to the conversation (does not start a response)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Closes the session; safe to call more than once."""


ModelFactory = Callable[[Profile, str], ModelSession]
"""Builds a session for a call from its profile and the assembled session instructions."""
