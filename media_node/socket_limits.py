"""Bounds on what one media socket may cost: frame rates, byte rates, frame sizes, silence.

Sans-I/O: :class:`SocketLimiter` takes what arrived (text or binary, its size, the time) and
answers with a :class:`Verdict`; it never touches a socket or a logger. The shell
(`media_node.guarded_connection`) applies verdicts and websockets' own limits
(:class:`SocketLimits` carries both), so a socket that floods, sends huge frames, sends nothing
or stops reading costs bounded CPU, memory and log lines, and never slows other calls.

A silent caller is not a dead socket: the platform streams frames of silence every 20 ms. A
socket with no frames at all for :attr:`SocketLimits.idle_seconds` is dead.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from mapokezi.config import ConfigError, env_float, env_int

POLICY_VIOLATION = 1008
"""Close code for a socket that broke a limit (RFC 6455 §7.4.1)."""


@dataclass(frozen=True)
class SocketLimits:
    """Per-socket bounds; the defaults leave an honest stream (50 frames/s) far below each.

    Attributes:
        max_message_bytes: Largest message websockets accepts; bigger closes with 1009.
        max_audio_frame_bytes: Larger binary frames are dropped (1 s of 16 kHz mono by default).
        text_frames_per_second: Sustained text frames allowed (the platform sends a handful).
        text_frame_burst: Text frames allowed at once.
        frames_per_second: Sustained frames of any kind allowed.
        frame_burst: Frames allowed at once (a backlog after a network stall arrives together).
        bytes_per_second: Sustained bytes allowed (48 kHz stereo PCM is 192 000 bytes/s).
        byte_burst: Bytes allowed at once.
        idle_seconds: A socket whose reader has waited this long with no frame at all is closed.
        write_stall_seconds: A socket whose write buffer stays at ``write_limit`` this long (the
            peer stopped reading) is aborted. websockets' keepalive cannot catch this: its ping
            waits behind the full buffer like any other send.
        open_timeout: Seconds for the opening handshake (websockets ``open_timeout``).
        ping_interval: Seconds between keepalive pings; a peer that stops reading stops
            answering them (websockets ``ping_interval``).
        ping_timeout: Seconds to wait for a pong before closing with 1011.
        close_timeout: Seconds for the closing handshake before the TCP connection is aborted.
        max_queue: Frames buffered before reading from the TCP socket pauses.
        write_limit: Bytes buffered for sending before ``send`` waits for the peer.
    """

    max_message_bytes: int = 64 * 1024
    max_audio_frame_bytes: int = 32_000
    text_frames_per_second: float = 5.0
    text_frame_burst: int = 20
    frames_per_second: float = 150.0
    frame_burst: int = 1000
    bytes_per_second: float = 256_000.0
    byte_burst: int = 2_000_000
    idle_seconds: float = 15.0
    write_stall_seconds: float = 10.0
    open_timeout: float = 10.0
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    close_timeout: float = 5.0
    max_queue: int = 64
    write_limit: int = 32 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SocketLimits:
        """Defaults overridden by ``MEDIA_*`` variables (see the README).

        Raises:
            ConfigError: a variable is malformed or out of range.
        """
        d = cls()
        limits = cls(
            max_message_bytes=env_int(
                env, "MEDIA_MAX_MESSAGE_BYTES", d.max_message_bytes, low=1024, high=2**24
            ),
            max_audio_frame_bytes=env_int(
                env, "MEDIA_MAX_AUDIO_FRAME_BYTES", d.max_audio_frame_bytes, low=320, high=2**24
            ),
            text_frames_per_second=env_float(
                env, "MEDIA_TEXT_FRAMES_PER_SECOND", d.text_frames_per_second, low=0.1
            ),
            frames_per_second=env_float(
                env, "MEDIA_FRAMES_PER_SECOND", d.frames_per_second, low=50.0
            ),
            bytes_per_second=env_float(
                env, "MEDIA_BYTES_PER_SECOND", d.bytes_per_second, low=16_000.0
            ),
            idle_seconds=env_float(env, "MEDIA_IDLE_SECONDS", d.idle_seconds, low=0.1),
            write_stall_seconds=env_float(
                env, "MEDIA_WRITE_STALL_SECONDS", d.write_stall_seconds, low=0.1
            ),
            ping_interval=env_float(env, "MEDIA_PING_INTERVAL_SECONDS", d.ping_interval, low=0.1),
            ping_timeout=env_float(env, "MEDIA_PING_TIMEOUT_SECONDS", d.ping_timeout, low=0.1),
            close_timeout=env_float(
                env, "MEDIA_CLOSE_TIMEOUT_SECONDS", d.close_timeout, low=0.1, high=60.0
            ),
        )
        if limits.max_audio_frame_bytes > limits.max_message_bytes:
            raise ConfigError(
                "MEDIA_MAX_AUDIO_FRAME_BYTES must not exceed MEDIA_MAX_MESSAGE_BYTES "
                f"({limits.max_audio_frame_bytes} > {limits.max_message_bytes})"
            )
        return limits


class Action(enum.Enum):
    """What to do with a message."""

    DELIVER = "deliver"
    DROP = "drop"
    CLOSE = "close"
    ABORT = "abort"
    """Drop the TCP connection: a peer that reads nothing would never get a close frame."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The limiter's answer: an action, and for ``CLOSE`` the close code and reason.

    ``log`` is set on the first event of its kind only, so the shell logs repeats once.
    """

    action: Action
    code: int = 0
    reason: str = ""
    log: str | None = None


DELIVER = Verdict(Action.DELIVER)
DROP_QUIETLY = Verdict(Action.DROP)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` says whether ``cost`` fitted."""

    __slots__ = ("burst", "rate", "_tokens", "_at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, cost: float, now: float) -> bool:
        """Spend ``cost`` tokens if there are enough; refills for the time since the last call."""
        elapsed = now - self._at
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._at = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True


class SocketLimiter:
    """Decides, message by message, whether one media socket stays within its limits.

    Args:
        limits: The bounds.
        now: The current time (monotonic seconds): the socket was just accepted.

    Attributes:
        waiting_since: When the reader started waiting for the message it has not got yet, or
            None while it is busy elsewhere. The shell sets it around each read (a plain
            attribute: this runs for every frame of every call).
    """

    __slots__ = (
        "_bytes",
        "_frames",
        "_last_frame_at",
        "_stalled_since",
        "_text",
        "closed",
        "counts",
        "limits",
        "waiting_since",
    )

    def __init__(self, limits: SocketLimits, now: float) -> None:
        self.limits = limits
        self._text = TokenBucket(limits.text_frames_per_second, limits.text_frame_burst, now)
        self._frames = TokenBucket(limits.frames_per_second, limits.frame_burst, now)
        self._bytes = TokenBucket(limits.bytes_per_second, limits.byte_burst, now)
        self._last_frame_at = now
        self.waiting_since: float | None = None
        self._stalled_since: float | None = None
        #: Events counted by kind (``oversized``, ``after_close``); see :meth:`summary`.
        self.counts: Counter[str] = Counter()
        #: The close verdict once a limit was broken; every later message is dropped.
        self.closed: Verdict | None = None

    def on_message(self, is_text: bool, size: int, now: float) -> Verdict:
        """Judge one message that arrived at ``now`` (``size`` in bytes, or characters of text)."""
        self._last_frame_at = now
        if self.closed is not None:
            self.counts["after_close"] += 1
            return DROP_QUIETLY
        if not self._frames.take(1, now):
            return self._close(f"more than {self.limits.frames_per_second:g} frames per second")
        if not self._bytes.take(size, now):
            return self._close(f"more than {self.limits.bytes_per_second:g} bytes per second")
        if is_text:
            if not self._text.take(1, now):
                rate = self.limits.text_frames_per_second
                return self._close(f"more than {rate:g} text frames per second")
            return DELIVER
        if size > self.limits.max_audio_frame_bytes:
            self.counts["oversized"] += 1
            if self.counts["oversized"] == 1:
                return Verdict(
                    Action.DROP,
                    log=(
                        f"dropping oversized audio frames ({size} bytes > "
                        f"{self.limits.max_audio_frame_bytes}); further ones are counted"
                    ),
                )
            return DROP_QUIETLY
        return DELIVER

    def check_idle(self, now: float) -> Verdict | None:
        """A ``CLOSE`` verdict if the reader has waited ``idle_seconds`` with no frame at all.

        Only a waiting reader counts: a reader busy elsewhere leaves frames queued, which is not
        silence.
        """
        if self.closed is not None or self.waiting_since is None:
            return None
        quiet_since = max(self.waiting_since, self._last_frame_at)
        if now - quiet_since < self.limits.idle_seconds:
            return None
        return self._close(f"no media frames for {self.limits.idle_seconds:g} s")

    def check_writes(self, buffered: int, now: float) -> Verdict | None:
        """An ``ABORT`` verdict if the write buffer has stayed full for ``write_stall_seconds``.

        Args:
            buffered: Bytes waiting in the socket's write buffer now.
            now: The current time.
        """
        if self.closed is not None:
            return None
        if buffered < self.limits.write_limit:
            self._stalled_since = None
            return None
        if self._stalled_since is None:
            self._stalled_since = now
            return None
        if now - self._stalled_since < self.limits.write_stall_seconds:
            return None
        reason = f"peer stopped reading for {self.limits.write_stall_seconds:g} s"
        self.closed = Verdict(Action.ABORT, 0, reason, log=f"aborting: {reason}")
        return self.closed

    def summary(self) -> str | None:
        """One line for the log about repeated events, or None when there were none."""
        parts = []
        if self.counts["oversized"]:
            parts.append(f"dropped {self.counts['oversized']} oversized frames")
        if self.counts["after_close"]:
            parts.append(f"ignored {self.counts['after_close']} frames after closing")
        return "; ".join(parts) or None

    def _close(self, reason: str) -> Verdict:
        self.closed = Verdict(Action.CLOSE, POLICY_VIOLATION, reason, log=f"closing: {reason}")
        return self.closed
