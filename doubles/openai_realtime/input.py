"""The input audio buffer of a Realtime double session, with its turn detection (sans-I/O).

Appended audio is decoded from the session's input format (PCM16 24 kHz, or G.711 at 8 kHz),
counted in milliseconds since the session began, and judged by an
:class:`~doubles.openai_realtime.vad.EnergyVad` configured from ``turn_detection``.
``semantic_vad`` is treated as ``server_vad`` with threshold 0.5, prefix 300 ms and
silence 500 ms. Positions are audio milliseconds, never wall-clock time.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from doubles.openai_realtime.audio import decode_g711
from doubles.openai_realtime.conversation import new_id
from doubles.openai_realtime.errors import RealtimeError
from doubles.openai_realtime.vad import EnergyVad
from doubles.wire_audio import compact_payload, strict_b64decode

__all__ = ["APPEND", "InputAudioBuffer", "SpeechEdge", "compact_append", "decode_audio"]

APPEND = "input_audio_buffer.append"
_COMPACT_HEAD = '{"type":"input_audio_buffer.append","audio":"'
_COMPACT_TAIL = '"}'
_PCM16 = np.dtype("<i2")


def decode_audio(audio: Any) -> bytes:
    """Decode an append's ``audio``: strict base64, as ``b64decode(validate=True)``.

    Raises:
        RealtimeError: ``invalid_value`` unless it is base64 (alphabet and final padding only).
    """
    try:
        if isinstance(audio, str):
            return strict_b64decode(audio)
        return binascii.a2b_base64(audio, strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        message = "Invalid 'audio': expected base64-encoded audio."
        raise RealtimeError("invalid_value", message, param="audio") from None


def compact_append(text: str) -> tuple[str, bytes] | None:
    """The base64 and decoded audio of a frame that is exactly a compact append, else None.

    A compact append is ``{"type":"input_audio_buffer.append","audio":"<base64>"}`` with no
    other field and no spacing, as clients stream it many times a second. Valid base64 holds
    no quote, backslash or control character, so when the audio decodes, a JSON parser would
    read the same two fields; anything else (other fields, spacing, escapes, bad audio) is
    left to the parser, which also reports the errors.
    """
    audio = compact_payload(text, _COMPACT_HEAD, _COMPACT_TAIL)
    if audio is None:
        return None
    try:
        return audio, decode_audio(audio)
    except RealtimeError:
        return None


@dataclass(frozen=True)
class SpeechEdge:
    """Speech started (``at_ms`` includes the prefix padding) or stopped, for ``item_id``."""

    kind: Literal["started", "stopped"]
    at_ms: int
    item_id: str


class InputAudioBuffer:
    """Audio appended since the last commit or clear, and where speech starts and stops.

    Args:
        record: Keep every appended byte in :attr:`audio`.
    """

    def __init__(self, *, record: bool = False) -> None:
        self.total_ms = 0.0
        """Audio received this session."""
        self.start_ms = 0.0
        """Session position where the uncommitted buffer begins."""
        self.audio: bytearray | None = bytearray() if record else None
        self.speech_item_id: str | None = None
        """Item announced by ``speech_started`` and not yet committed."""
        self._format = "audio/pcm"
        self._detection: dict[str, Any] | None = None
        self._vad: EnergyVad | None = None
        self._odd_byte = b""

    @property
    def buffered_ms(self) -> float:
        """Audio in the buffer."""
        return self.total_ms - self.start_ms

    @property
    def speaking(self) -> bool:
        """Whether speech has started and not stopped."""
        return self._vad is not None and self._vad.speaking

    def configure(self, input_format: str, turn_detection: dict[str, Any] | None) -> None:
        """Follow the session's input format and turn detection (keeps the audio position)."""
        self._detection = turn_detection
        if turn_detection is None:
            self._vad = None
            return
        threshold = turn_detection.get("threshold", 0.5)
        silence_ms = turn_detection.get("silence_duration_ms", 500)
        if self._vad is None or input_format != self._format:
            rate = 24_000 if input_format == "audio/pcm" else 8_000
            self._vad = EnergyVad(
                rate,
                threshold=threshold,
                silence_duration_ms=silence_ms,
                start_ms=int(self.total_ms),
            )
        else:
            self._vad.configure(threshold=threshold, silence_duration_ms=silence_ms)
        self._format = input_format

    def append(self, data: bytes, *, detect: bool = True) -> list[SpeechEdge]:
        """Add audio in the session's input format; return speech edges it completes."""
        if self.audio is not None:
            self.audio.extend(data)
        if self._format == "audio/pcm":
            if self._odd_byte:
                data = self._odd_byte + data
                self._odd_byte = b""
            count = len(data) // 2
            if len(data) % 2:
                self._odd_byte = data[-1:]
            samples = np.frombuffer(data, dtype=_PCM16, count=count)
            self.total_ms += count / 24
        else:
            samples = decode_g711(data, law="ulaw" if self._format == "audio/pcmu" else "alaw")
            self.total_ms += len(samples) / 8
        if not detect or self._vad is None:
            return []
        edges = []
        for event in self._vad.feed(samples):
            if event.kind == "start":
                self.speech_item_id = new_id("item")
                prefix = (self._detection or {}).get("prefix_padding_ms", 300)
                at_ms = max(int(self.start_ms), event.at_ms - prefix)
                edges.append(SpeechEdge("started", at_ms, self.speech_item_id))
            else:
                edges.append(
                    SpeechEdge("stopped", event.at_ms, self.speech_item_id or new_id("item"))
                )
        return edges

    def take(self, end_ms: float, *, manual: bool = False) -> tuple[str, float]:
        """Commit the buffer up to ``end_ms``: the item id to use and the audio it holds.

        A ``manual`` commit (``input_audio_buffer.commit``) also ends any speech in progress.
        """
        item_id = self.speech_item_id or new_id("item")
        if manual and self._vad is not None:
            self._vad.reset()
        committed = end_ms - self.start_ms
        self.start_ms = end_ms
        self.speech_item_id = None
        return item_id, committed

    def clear(self) -> None:
        """Drop the buffer and any speech in progress (also before a manual commit)."""
        if self._vad is not None:
            self._vad.reset()
        self.start_ms = self.total_ms
        self.speech_item_id = None
