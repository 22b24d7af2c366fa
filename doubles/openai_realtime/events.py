"""What a Realtime double session asks its connection to do, and what it records.

Actions (:class:`Outgoing`, :class:`CloseConnection`, :class:`AbortConnection`,
:class:`StartTimer`) flow from the sans-I/O protocol to the I/O layer; records
(:class:`ClientEvent`, :class:`Truncate`) are kept for test assertions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AbortConnection",
    "Action",
    "ClientEvent",
    "CloseConnection",
    "Outgoing",
    "StartTimer",
    "Timer",
    "Truncate",
    "log_client_event",
]


@dataclass(frozen=True)
class Outgoing:
    """A server event to send, serialised."""

    type: str
    text: str


@dataclass(frozen=True)
class CloseConnection:
    """Close the WebSocket with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True)
class AbortConnection:
    """Drop the TCP connection without a closing handshake."""


@dataclass(frozen=True)
class Timer:
    """A deferred step: the next burst of a response, or a transcription result."""

    kind: Literal["response", "transcription"]
    key: str


@dataclass(frozen=True)
class StartTimer:
    """Call :meth:`RealtimeSessionProtocol.timer_fired` with ``timer`` after ``delay_s``."""

    delay_s: float
    timer: Timer


Action = Outgoing | CloseConnection | AbortConnection | StartTimer


@dataclass(frozen=True)
class ClientEvent:
    """A client event as received; audio appends carry counts and sizes instead of audio."""

    type: str
    payload: dict[str, Any]
    received_at: float


@dataclass(frozen=True)
class Truncate:
    """A ``conversation.item.truncate`` and what the double did with it."""

    item_id: str
    content_index: int
    audio_end_ms: int
    applied_ms: int | None
    item_audio_ms: float | None
    error: str | None


def log_client_event(log: list[ClientEvent], event: dict[str, Any], now: float) -> None:
    """Append ``event`` to ``log``; a run of audio appends becomes one summary record.

    Appends are summarised as ``{"appends": n, "audio_bytes": total}`` so a long call costs a
    handful of records, not fifty per second.
    """
    if event.get("type") != "input_audio_buffer.append":
        log.append(ClientEvent(str(event.get("type")), event, now))
        return
    audio = event.get("audio")
    size = len(audio) * 3 // 4 - audio[-2:].count("=") if isinstance(audio, str) else 0
    last = log[-1] if log else None
    if last is not None and last.type == "input_audio_buffer.append":
        appends = last.payload["appends"] + 1
        payload = {"appends": appends, "audio_bytes": last.payload["audio_bytes"] + size}
        log[-1] = dataclasses.replace(last, payload=payload)
    else:
        log.append(
            ClientEvent("input_audio_buffer.append", {"appends": 1, "audio_bytes": size}, now)
        )
