"""Audio core of the media node, free of I/O: decode, resample, frame, pace and account.

Per call: `InboundPcm` realigns the caller's L16 frames, a `StreamResampler` per direction
converts between the telephony rate and the model's rate, a `Framer` cuts model audio into exact
20 ms frames, and a `Pacer` releases them at real time while its `PlayoutLedger` tracks what the
caller has heard of each model item.
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
