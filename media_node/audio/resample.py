"""Stateful streaming resampling of 16-bit little-endian PCM with soxr.

One `StreamResampler` is kept per call and per direction (caller→model, model→caller). The
filter history carries across chunks, so the output does not depend on how the input was chunked;
resampling each chunk on its own restarts the filter at every boundary and produces an audible
50 Hz buzz. Samples go through soxr as float32 and are rounded and clipped back to int16 here:
that path is deterministic and bit-exact across chunkings, whereas soxr's own int16 output adds
dither that differs with the chunking.
"""

from __future__ import annotations

import sys

import numpy as np
import soxr

# HQ rejects aliases as well as VHQ with about half the hold-back; VHQ adds ~85 ms on 8 kHz
# calls, and the quick qualities (QQ/LQ) fold a 5 kHz tone into 8 kHz audio at full level.
ALLOWED_QUALITIES = ("HQ", "MQ")

_INT16_MAX = np.float32(32767.0)
_INT16_MIN = np.float32(-32768.0)
_PCM_DTYPE = np.dtype("<i2")
_EMPTY_F32 = np.zeros(0, dtype=np.float32)
_NATIVE_LITTLE_ENDIAN = sys.byteorder == "little"


class StreamResampler:
    """Resamples a continuous mono int16 PCM stream from one rate to another.

    Feed every chunk of one continuous signal through `process`; call `flush` at the end of the
    signal (the end of a model reply) to get the samples soxr still holds back; call `clear` only
    when the audio is being abandoned (barge-in), never on a timer.

    Args:
        in_rate: Input sample rate in Hz, e.g. 16000 or 8000 (caller) or 24000 (model).
        out_rate: Output sample rate in Hz.
        quality: soxr quality recipe, "HQ" (default) or "MQ".

    Raises:
        ValueError: On a non-positive rate or a quality outside `ALLOWED_QUALITIES`.
    """

    __slots__ = ("_dirty", "_stream", "in_rate", "out_rate")

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} and {out_rate}")
        if quality not in ALLOWED_QUALITIES:
            raise ValueError(f"quality must be one of {ALLOWED_QUALITIES}, got {quality!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, "float32", quality)
        # True once samples went in since the last flush/clear, so an idle flush costs nothing.
        self._dirty = False

    def process(self, pcm: bytes) -> bytes:
        """Resamples the next chunk of the stream.

        Args:
            pcm: Mono int16 little-endian samples; the length must be even.

        Returns:
            The int16 little-endian samples soxr releases for this chunk. soxr holds some back
            (tens of ms) and releases output in bursts, so re-chunk the result with a `Framer`.

        Raises:
            ValueError: If `pcm` has an odd number of bytes (use `InboundPcm` to realign).
        """
        if len(pcm) & 1:
            raise ValueError(f"PCM chunk of {len(pcm)} bytes is not whole 16-bit samples")
        if not pcm:
            return b""
        if self._stream is None:
            return bytes(pcm)
        self._dirty = True
        # A (samples, 1) column goes through soxr as it is; a flat array would be reshaped on
        # the way in and squeezed on the way out.
        samples = np.frombuffer(pcm, dtype=_PCM_DTYPE).astype(np.float32).reshape(-1, 1)
        return _to_pcm16(self._stream.resample_chunk(samples))

    def flush(self) -> bytes:
        """Ends the current signal: returns the held-back tail and readies the next signal.

        soxr refuses input after its final chunk, so the stream is reset after draining; the next
        `process` call starts a fresh signal (the next reply) with an empty filter history.

        Returns:
            The remaining int16 little-endian samples (empty if nothing was pending).
        """
        if self._stream is None or not self._dirty:
            return b""
        tail = self._stream.resample_chunk(_EMPTY_F32, last=True)
        self._stream.clear()
        self._dirty = False
        return _to_pcm16(tail)

    def clear(self) -> None:
        """Drops all history and held-back samples (barge-in: that audio must not be played)."""
        if self._stream is not None and self._dirty:
            self._stream.clear()
        self._dirty = False


def _to_pcm16(samples: np.ndarray) -> bytes:
    """Rounds and clips float32 samples in place and packs them as int16 little-endian bytes."""
    if samples.size == 0:
        return b""
    np.rint(samples, out=samples)
    # Filter ringing can overshoot full scale; without the clip the cast would wrap around.
    # (One clip costs less than a minimum and a maximum: fewer calls per chunk.)
    samples.clip(_INT16_MIN, _INT16_MAX, out=samples)
    pcm = samples.astype(np.int16)
    if not _NATIVE_LITTLE_ENDIAN:
        pcm.byteswap(inplace=True)
    return pcm.tobytes()
