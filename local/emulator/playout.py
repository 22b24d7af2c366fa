"""The caller's playout buffer, modelled on mod_audio_fork's bidirectional playback.

Audio the server sends is queued and drained one frame per tick at real time. Playback starts
once ``prebuffer_ms`` is queued (about 80 ms in mod_audio_fork), restarts after running dry or
after ``killAudio`` once ``rebuffer_ms`` is queued (about 40 ms), and also starts when a short
tail has been waiting for ``start_after_idle_ms`` with nothing more arriving, so a reply shorter
than the prebuffer is still heard. ``kill()`` empties the queue at once, as ``killAudio`` does.
An underrun is counted when the queue runs dry while playing and audio arrives again within
``underrun_window_ms`` (the reply was still coming, so the caller heard a gap); quiet passages
inside the audio itself are bytes like any other and never count.
Sans-I/O: the media leg calls ``push`` when bytes arrive and ``pull`` on every tick.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlayoutConfig:
    """Playout buffer settings, in milliseconds of audio.

    Attributes:
        prebuffer_ms: Queued audio needed before the first playback starts.
        rebuffer_ms: Queued audio needed to restart after running dry or a kill.
        start_after_idle_ms: Start anyway when this long passes with no new audio.
        drain_on_close: Keep playing what is queued after the socket closes (the default drops
            it, and the media leg reports how much was never heard).
        underrun_window_ms: Audio arriving this soon after the queue ran dry means the buffer
            starved mid-reply (an underrun); later audio is a new reply.
    """

    prebuffer_ms: float = 80.0
    rebuffer_ms: float = 40.0
    start_after_idle_ms: float = 80.0
    drain_on_close: bool = False
    underrun_window_ms: float = 200.0


class PlayoutBuffer:
    """Queue of s16le playback audio drained in fixed frames.

    Args:
        rate: Sample rate of the audio the server sends (``bidirectionalSamplingRate``).
        frame_ms: Duration of one tick.
        config: Buffer thresholds.
    """

    def __init__(self, rate: int, frame_ms: float = 20.0, config: PlayoutConfig | None = None):
        self.config = config or PlayoutConfig()
        self.rate = rate
        self.frame_bytes = int(rate * frame_ms / 1000) * 2
        self._bytes_per_ms = rate * 2 / 1000
        self._queue = bytearray()
        self._odd = b""  # a byte of a sample split across two WebSocket frames
        self._playing = False
        self._started_once = False
        self._idle_ticks = 0
        self._idle_limit = max(1, round(self.config.start_after_idle_ms / frame_ms))
        self._frame_ms = frame_ms
        self._ticks = 0
        self._dry_at_tick: int | None = None
        self.peak_buffered = 0
        self.underruns = 0

    @property
    def buffered(self) -> int:
        """Bytes queued and not yet played."""
        return len(self._queue)

    @property
    def playing(self) -> bool:
        """Whether playback is running (prebuffer satisfied)."""
        return self._playing

    def _ms(self, value: float) -> int:
        return int(value * self._bytes_per_ms) & ~1

    def push(self, data: bytes) -> None:
        """Queue audio as it arrives; an odd trailing byte waits for the next chunk."""
        if self._dry_at_tick is not None and data:
            if (self._ticks - self._dry_at_tick) * self._frame_ms <= self.config.underrun_window_ms:
                self.underruns += 1
            self._dry_at_tick = None
        data = self._odd + data
        even = len(data) & ~1
        self._odd = data[even:]
        self._queue += data[:even]
        self._idle_ticks = 0
        self.peak_buffered = max(self.peak_buffered, len(self._queue))

    def pull(self) -> tuple[bytes, int]:
        """Play one tick.

        Returns:
            ``(frame, audio_bytes)``: exactly ``frame_bytes`` of PCM (silence-padded) and how
            many of those bytes came from the server.
        """
        self._ticks += 1
        if not self._playing and self._queue:
            threshold = self.config.rebuffer_ms if self._started_once else self.config.prebuffer_ms
            if len(self._queue) >= self._ms(threshold) or self._idle_ticks >= self._idle_limit:
                self._playing = self._started_once = True
            else:
                self._idle_ticks += 1
        if not self._playing:
            return bytes(self.frame_bytes), 0
        take = min(self.frame_bytes, len(self._queue))
        chunk = bytes(self._queue[:take])
        del self._queue[:take]
        if not self._queue:
            self._playing = False
            self._idle_ticks = 0
            self._dry_at_tick = self._ticks
        return chunk + bytes(self.frame_bytes - take), take

    def kill(self) -> int:
        """Drop everything queued (``killAudio``); returns the bytes dropped."""
        dropped = len(self._queue) + len(self._odd)
        self._queue.clear()
        self._odd = b""
        self._playing = False
        self._idle_ticks = 0
        self._dry_at_tick = None  # audio after a kill is a new reply, not a starved one
        return dropped
