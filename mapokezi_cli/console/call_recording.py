"""What was on the line during a browser call, mixed as the platform records a call.

Sautikit records calls itself; the local stack's Sautikit API double holds recordings only when
given one. :class:`LineRecorder` mixes the caller's audio (continuous, from the microphone) with
the receptionist's (placed at its arrival time, cut where ``killAudio`` cut the caller's
playback) and :func:`upload_to_double` hands the WAV to the double, so the console's call page
can play it as it would a real recording. Sans-I/O except for the upload.
"""

from __future__ import annotations

import asyncio
import io
import urllib.parse
import urllib.request
import wave

import numpy as np

from local.emulator.webhook import urlopen


class LineRecorder:
    """Both sides of a call at one rate, on the media socket's clock."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._caller = bytearray()
        self._agent = np.zeros(0, dtype=np.int32)
        self._agent_end = 0  # next free sample of the receptionist's track

    def caller(self, pcm: bytes) -> None:
        """Caller audio, in order (it arrives at real time)."""
        self._caller += pcm[: len(pcm) & ~1]

    def receptionist(self, pcm: bytes, at_ms: float) -> None:
        """Receptionist audio that arrived ``at_ms`` after the socket opened."""
        samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2").astype(np.int32)
        start = max(self._agent_end, int(at_ms * self.rate / 1000))
        end = start + len(samples)
        if end > len(self._agent):
            self._agent = np.pad(self._agent, (0, end - len(self._agent)))
        self._agent[start:end] += samples
        self._agent_end = end

    def kill(self, at_ms: float) -> None:
        """``killAudio``: what had not been played by ``at_ms`` was never heard."""
        cut = int(at_ms * self.rate / 1000)
        if cut < self._agent_end:
            self._agent = self._agent[:cut].copy()
            self._agent_end = cut

    def wav(self) -> bytes:
        """The mixed call as a mono 16-bit WAV."""
        caller = np.frombuffer(bytes(self._caller), dtype="<i2").astype(np.int32)
        length = max(len(caller), len(self._agent))
        mixed = np.pad(caller, (0, length - len(caller))) + np.pad(
            self._agent, (0, length - len(self._agent))
        )
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(self.rate)
            writer.writeframes(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
        return out.getvalue()


async def upload_to_double(double_url: str, call_id: str, wav: bytes) -> str | None:
    """Give the Sautikit API double the call's recording; a warning on failure, else None."""
    url = f"{double_url.rstrip('/')}/_double/calls/{urllib.parse.quote(call_id, safe='')}/recording"

    def send() -> str | None:
        request = urllib.request.Request(
            url, data=wav, headers={"Content-Type": "audio/wav"}, method="POST"
        )
        try:
            with urlopen(request, 10) as response:
                return None if response.status == 201 else f"HTTP {response.status}"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    failure = await asyncio.to_thread(send)
    return None if failure is None else f"recording not stored in the Sautikit double: {failure}"
