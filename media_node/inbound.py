"""The inbound audio path of one call, without I/O: how to decode the caller, then PCM → model.

The chipmunk guard's decision lives here. The metadata frame may state a sample rate or channel
layout that disagrees with the profile (the rate the webhook asked Sautikit for). A mismatch is
always logged as a warning; for *decoding* the caller the stated rate is trusted only when it is
one Sautikit can send (8000 or 16000), since the stream is what it is whatever was asked for,
and a stated 1 or 2 channels is trusted likewise. Audio towards the caller stays at the profile's
rate: that is the ``bidirectionalSamplingRate`` Sautikit was told to expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mapokezi.profiles import AudioSettings
from media_node.audio import FRAME_MS, InboundPcm, StreamResampler
from media_node.sautikit_protocol import StreamMetadata, check_metadata

TRUSTED_RATES = (8000, 16000)
TRUSTED_CHANNELS = (1, 2)


def expected_channels(audio: AudioSettings) -> int:
    """Channels the profile implies: ``both_tracks`` is mod_audio_fork's stereo mix (caller on
    channel 0) unless the metadata says otherwise; ``inbound_track`` is the caller alone."""
    return 2 if audio.track == "both_tracks" else 1


@dataclass(frozen=True)
class DecodePlan:
    """How the caller's binary frames are decoded, and what disagreed with the profile."""

    rate: int
    channels: int
    warnings: list[str] = field(default_factory=list)


def decode_plan(meta: StreamMetadata | None, audio: AudioSettings) -> DecodePlan:
    """Decides the caller's decoding from the metadata frame (None: no metadata arrived)."""
    channels = expected_channels(audio)
    if meta is None:
        return DecodePlan(audio.sample_rate, channels)
    warnings = check_metadata(meta, audio.sample_rate, channels)
    rate = meta.sample_rate if meta.sample_rate in TRUSTED_RATES else audio.sample_rate
    if meta.channels in TRUSTED_CHANNELS:
        channels = meta.channels
    return DecodePlan(rate, channels, warnings)


class InboundAudio:
    """Caller frames → whole mono samples of the caller → the model's rate, one stateful stream.

    Decoded audio is gathered into blocks of about `append_ms` before it is resampled, so the
    model gets one append per block instead of one per 20 ms frame: half the JSON, base64,
    WebSocket frames and soxr calls at 40 ms. The stream is the same whatever the blocking:
    the stateful resampler's output does not depend on how its input is chunked. A block closes
    with the frame that brings it within a millisecond of `append_ms` (odd-length frames and
    split stereo samples make frames a sample short or long).

    Args:
        plan: How to decode the frames.
        model_rate: The model's input rate (24000 for OpenAI Realtime).
        append_ms: Audio per block; at most one frame (20 ms) passes every frame straight on.
    """

    def __init__(self, plan: DecodePlan, model_rate: int, append_ms: int = FRAME_MS) -> None:
        self.plan = plan
        self.pcm = InboundPcm(plan.rate, plan.channels)
        self.resampler = StreamResampler(plan.rate, model_rate)
        self._pending = bytearray()
        self._block_bytes = 0
        if append_ms > FRAME_MS:
            block = plan.rate * 2 * append_ms // 1000
            self._block_bytes = block - plan.rate * 2 // 1000

    @property
    def pending_bytes(self) -> int:
        """Decoded caller audio (at the decoding rate) waiting for the rest of its block."""
        return len(self._pending)

    def feed(self, frame: bytes) -> bytes:
        """Decodes one binary frame; returns the model-rate PCM of a completed block, else b"".

        Raises:
            FrameTooLargeError: For an oversized frame (nothing of it is kept).
        """
        pcm = self.pcm.feed(frame)
        if not self._block_bytes:
            return self.resampler.process(pcm)
        pending = self._pending
        pending += pcm
        if len(pending) < self._block_bytes:
            return b""
        block = bytes(pending)
        pending.clear()
        return self.resampler.process(block)

    def flush(self) -> bytes:
        """The model-rate PCM of the incomplete block (the end of the caller's audio), or b"".

        The resampler keeps its history: a later frame continues the same stream.
        """
        if not self._pending:
            return b""
        block = bytes(self._pending)
        self._pending.clear()
        return self.resampler.process(block)
