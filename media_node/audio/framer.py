"""Re-chunking of bursty PCM into frames of exactly one size.

soxr releases output in bursts of uneven length and the model sends deltas of any size, while the
caller's side expects steady 20 ms frames (640 bytes at 16 kHz). `Framer` buffers the bytes and
cuts exact frames; at the end of a reply `flush` pads the last partial frame with silence so the
final syllable is sent rather than dropped.
"""

from __future__ import annotations


class Framer:
    """Cuts a byte stream into frames of exactly `frame_bytes` bytes.

    Args:
        frame_bytes: Frame size in bytes; positive and even (whole 16-bit samples).

    Raises:
        ValueError: On an odd or non-positive frame size.
    """

    __slots__ = ("_buffer", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ValueError(f"frame_bytes must be positive and even, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buffer)

    def push(self, pcm: bytes) -> list[bytes]:
        """Adds PCM and returns every complete frame now available, in order.

        Args:
            pcm: Any number of bytes continuing the stream.

        Returns:
            Zero or more frames of exactly `frame_bytes` bytes.
        """
        size = self.frame_bytes
        buffer = self._buffer
        if not buffer and len(pcm) == size:
            # The steady state of an already framed stream: pass the frame through uncopied.
            return [bytes(pcm)]
        buffer += pcm
        count = len(buffer) // size
        if count == 0:
            return []
        view = memoryview(buffer)
        frames = [bytes(view[i : i + size]) for i in range(0, count * size, size)]
        view.release()
        del buffer[: count * size]
        return frames

    def flush(self) -> bytes | None:
        """Returns the partial frame padded with silence, or None if nothing is pending."""
        if not self._buffer:
            return None
        frame = bytes(self._buffer) + bytes(self.frame_bytes - len(self._buffer))
        self._buffer.clear()
        return frame

    def clear(self) -> int:
        """Drops the pending partial frame (barge-in) and returns how many bytes were dropped."""
        dropped = len(self._buffer)
        self._buffer.clear()
        return dropped
