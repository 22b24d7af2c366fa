"""Audio core of the media node, free of I/O: decode, resample, frame, pace and account.

Per call, with `rate` the stream's rate (16000 or 8000) and 24000 the model's rate:

- caller → model: ``up.process(inbound.feed(frame))`` with ``inbound = InboundPcm(rate)`` and
  ``up = StreamResampler(rate, 24000)``;
- model → caller: for each audio delta, ``framer.push(down.process(pcm))`` with
  ``down = StreamResampler(24000, rate)`` and ``framer = Framer(frame_bytes(rate))``, each frame
  ``pacer.enqueue(frame, item_id)``; at the end of a reply enqueue
  ``framer.push(down.flush())`` and ``framer.flush()``, then ``pacer.end_reply()``. Send what
  ``pacer.release(now)`` returns, after every enqueue and at ``pacer.next_wakeup(now)``;
- barge-in: ``pacer.clear(now)``, ``framer.clear()``, ``down.clear()``, send killAudio, and
  truncate the item at ``pacer.ledger.heard_ms(item_id, now)`` (clamped to the audio received).
"""

from media_node.audio.framer import Framer
from media_node.audio.ledger import PlayoutLedger
from media_node.audio.pacer import DEFAULT_LEAD_MS, Pacer, PacerStats, Released
from media_node.audio.pcm import (
    FRAME_MS,
    SAMPLE_WIDTH,
    FrameTooLargeError,
    InboundPcm,
    frame_bytes,
    pcm_duration_ms,
)
from media_node.audio.resample import StreamResampler

__all__ = [
    "DEFAULT_LEAD_MS",
    "FRAME_MS",
    "SAMPLE_WIDTH",
    "FrameTooLargeError",
    "Framer",
    "InboundPcm",
    "Pacer",
    "PacerStats",
    "PlayoutLedger",
    "Released",
    "StreamResampler",
    "frame_bytes",
    "pcm_duration_ms",
]
