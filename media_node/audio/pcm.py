"""Inbound L16 frame decoding and frame-size arithmetic for 16-bit little-endian PCM.

The media socket delivers raw 16-bit little-endian PCM in binary frames whose boundaries need not
fall on sample boundaries (mod_audio_fork carries an odd trailing byte over to the next frame), and
a `both_tracks` stream may be stereo interleaved. `InboundPcm` turns such frames into whole mono
samples of the caller's channel.
"""

from __future__ import annotations

import numpy as np

SAMPLE_WIDTH = 2
"""Bytes per sample of 16-bit PCM."""

FRAME_MS = 20
"""Duration of one telephony frame in milliseconds."""

DEFAULT_MAX_FRAME_MS = 1000
"""Default cap on one inbound frame, in ms of audio; telephony frames are ~20 ms."""

_PCM_DTYPE = np.dtype("<i2")


def frame_bytes(sample_rate: int, frame_ms: int = FRAME_MS, channels: int = 1) -> int:
    """Bytes in one frame of 16-bit PCM.

    Args:
        sample_rate: Sample rate in Hz.
        frame_ms: Frame duration in milliseconds (default 20).
        channels: Interleaved channels per sample frame (default 1).

    Returns:
        The frame size in bytes: 640 for 20 ms at 16 kHz mono, 320 at 8 kHz, 960 at 24 kHz.

    Raises:
        ValueError: If the duration is not a whole number of samples at that rate.
    """
    samples, remainder = divmod(sample_rate * frame_ms, 1000)
    if remainder or samples <= 0:
        raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples")
    return samples * SAMPLE_WIDTH * channels


def pcm_duration_ms(byte_count: int, sample_rate: int, channels: int = 1) -> float:
    """Duration in milliseconds of `byte_count` bytes of 16-bit PCM."""
    return byte_count * 1000 / (sample_rate * SAMPLE_WIDTH * channels)


class FrameTooLargeError(ValueError):
    """An inbound frame exceeded the configured cap; nothing of it was consumed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"inbound audio frame of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class InboundPcm:
    """Realigns inbound L16 frames into whole mono samples of the caller's channel.

    Args:
        sample_rate: Stream sample rate in Hz (used for the default frame cap).
        channels: Interleaved channels in the stream: 1 (mono/mixed) or 2 (stereo).
        caller_channel: Index of the caller's channel in an interleaved stream.
        max_frame_bytes: Largest frame accepted; defaults to `DEFAULT_MAX_FRAME_MS` of audio.

    Raises:
        ValueError: On an invalid channel layout or cap.
    """

    __slots__ = ("_block", "_carry", "caller_channel", "channels", "max_frame_bytes")

    def __init__(
        self,
        sample_rate: int,
        channels: int = 1,
        caller_channel: int = 0,
        max_frame_bytes: int | None = None,
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if not 0 <= caller_channel < channels:
            raise ValueError(f"caller_channel {caller_channel} is not one of {channels} channels")
        if max_frame_bytes is None:
            max_frame_bytes = frame_bytes(sample_rate, DEFAULT_MAX_FRAME_MS, channels)
        if max_frame_bytes <= 0:
            raise ValueError(f"max_frame_bytes must be positive, got {max_frame_bytes}")
        self.channels = channels
        self.caller_channel = caller_channel
        self.max_frame_bytes = max_frame_bytes
        self._block = SAMPLE_WIDTH * channels
        self._carry = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete sample frame carried over to the next `feed`."""
        return len(self._carry)

    def feed(self, data: bytes) -> bytes:
        """Decodes one inbound binary frame.

        Args:
            data: The frame's payload as received.

        Returns:
            Whole mono int16 little-endian samples (possibly empty). Bytes of an incomplete
            sample (or, for stereo, an incomplete sample frame) are kept for the next call.

        Raises:
            FrameTooLargeError: If `data` is longer than `max_frame_bytes`. The decoder's state
                is unchanged, so the stream continues with the next frame.
        """
        if len(data) > self.max_frame_bytes:
            raise FrameTooLargeError(len(data), self.max_frame_bytes)
        buffer = self._carry + data if self._carry else bytes(data)
        whole = len(buffer) - len(buffer) % self._block
        self._carry = buffer[whole:]
        if self.channels == 1:
            # A full-length slice of bytes is the same object: no copy in the common case.
            return buffer[:whole]
        samples = np.frombuffer(buffer, dtype=_PCM_DTYPE, count=whole // SAMPLE_WIDTH)
        return samples[self.caller_channel :: self.channels].tobytes()

    def reset(self) -> None:
        """Forgets any carried partial sample (a new stream on the same decoder)."""
        self._carry = b""
