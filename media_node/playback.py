"""The outbound audio path of one call, without I/O: model PCM → resampler → framer → pacer.

One stateful resampler serves the whole call; it is flushed at the end of each reply item (so the
last syllable is not held back) and cleared only on barge-in. Pre-rendered lines are already at
the call's rate and go through their own framer into the same pacer, so the ledger and the
underrun counters see every frame the caller hears.

A reply that starts on a silent line waits briefly for a cushion: soxr and the framer hold back
~40 ms of the first delta, so when the model streams barely faster than real time the second
delta lands just after the first one has played and the caller hears a gap a few syllables in.
Release therefore starts once `lead + START_CUSHION_MS` is queued, the item ends, or
`START_WAIT_MS` has passed, whichever comes first; bursty models pass straight through.
"""

from __future__ import annotations

from media_node.audio import Framer, Pacer, StreamResampler, frame_bytes

START_CUSHION_MS = 40
START_WAIT_MS = 40


class Playback:
    """Model audio and pre-rendered lines on their way to the caller.

    Args:
        model_rate: Rate of the model's PCM (24000 for OpenAI Realtime).
        call_rate: The media socket's rate towards the caller (8000 or 16000).
        lead_ms: Pacer lead: how far ahead of real time frames are sent.
    """

    def __init__(self, model_rate: int, call_rate: int, lead_ms: float) -> None:
        self.call_rate = call_rate
        self.frame_bytes = frame_bytes(call_rate)
        self.resampler = StreamResampler(model_rate, call_rate)
        self.framer = Framer(self.frame_bytes)
        self.pacer = Pacer(lead_ms=lead_ms)
        self.current_item: str | None = None
        self._start_cushion_ms = lead_ms + START_CUSHION_MS
        self._start_wait_until: float | None = None

    def push(self, item_id: str, pcm: bytes, now: float) -> int:
        """Queues model audio of `item_id` arriving at `now`; returns the frames queued now."""
        if self.current_item is not None and self.current_item != item_id:
            self.end_item(self.current_item)
        if self.pacer.is_idle(now):
            self._start_wait_until = now + START_WAIT_MS / 1000
        self.current_item = item_id
        frames = self.framer.push(self.resampler.process(pcm))
        for frame in frames:
            self.pacer.enqueue(frame, item_id)
        return len(frames)

    def hold_until(self, now: float) -> float | None:
        """Until when release should wait for a reply's start cushion; None: release now."""
        until = self._start_wait_until
        if until is None:
            return None
        if (
            now >= until
            or self.current_item is None
            or (self.pacer.queued_ms >= self._start_cushion_ms)
        ):
            self._start_wait_until = None
            return None
        return until

    def end_item(self, item_id: str) -> int:
        """Ends `item_id`'s audio: flushes the resampler and pads the last frame."""
        if self.current_item != item_id:
            return 0
        frames = self.framer.push(self.resampler.flush())
        last = self.framer.flush()
        if last is not None:
            frames.append(last)
        for frame in frames:
            self.pacer.enqueue(frame, item_id)
        self.pacer.end_reply()
        self.current_item = None
        return len(frames)

    def play_line(self, pcm: bytes) -> int:
        """Queues a pre-rendered line (PCM at the call's rate) after whatever is queued."""
        framer = Framer(self.frame_bytes)
        frames = framer.push(pcm)
        last = framer.flush()
        if last is not None:
            frames.append(last)
        for frame in frames:
            self.pacer.enqueue(frame)
        self.pacer.end_reply()
        return len(frames)

    def interrupt(self, now: float) -> int:
        """Barge-in: drops queued and half-made frames; returns the queued frames dropped."""
        dropped = self.pacer.clear(now)
        self._start_wait_until = None
        self.framer.clear()
        self.resampler.clear()
        self.current_item = None
        return dropped

    def busy(self, now: float) -> bool:
        """Whether the caller is hearing, or about to hear, anything."""
        return self.current_item is not None or not self.pacer.is_idle(now)

    def idle_at(self, now: float) -> float | None:
        """The earliest time the caller can have heard everything queued by `now`.

        Returns:
            `now` or later; None while a reply item is still arriving (its end is an event).
        """
        if self.current_item is not None:
            return None
        end = self.pacer.playout_end
        start = now if end is None or end < now else end
        return start + self.pacer.queued_ms / 1000
