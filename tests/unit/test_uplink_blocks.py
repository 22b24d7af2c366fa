"""Caller audio gathered into blocks before it goes to the model (``UPLINK_APPEND_MS``)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from mapokezi.config import ConfigError
from media_node.audio import InboundPcm, StreamResampler
from media_node.inbound import DecodePlan, InboundAudio
from media_node.models import openai_protocol as wire
from media_node.node_settings import NodeSettings
from tests.unit.audio.signals import speech_like, to_pcm

BASE = {"STREAM_TOKEN_SECRET": "s3cret", "OPENAI_API_KEY": "sk-test"}


def frames_of(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def per_frame_stream(frames: list[bytes], in_rate: int) -> bytes:
    """What the model got when every frame was sent on its own."""
    resampler = StreamResampler(in_rate, 24000)
    return b"".join(resampler.process(frame) for frame in frames)


@pytest.mark.parametrize("rate", [16000, 8000])
@pytest.mark.parametrize("append_ms", [40, 60, 100])
def test_blocks_carry_exactly_the_per_frame_stream(rate: int, append_ms: int) -> None:
    frames = frames_of(to_pcm(speech_like(rate, 1.02)), rate * 2 // 50)  # 51 frames of 20 ms
    inbound = InboundAudio(DecodePlan(rate, 1), 24000, append_ms)
    outputs, closed_at = [], []
    for index, frame in enumerate(frames):
        outputs.append(inbound.feed(frame))
        if inbound.pending_bytes == 0:
            closed_at.append(index)
        else:
            assert outputs[-1] == b""  # nothing leaves before its block is complete
    per_block = append_ms // 20
    # One block every `per_block` frames, closed by the frame that completes it.
    assert closed_at == list(range(per_block - 1, len(frames), per_block))
    assert inbound.pending_bytes == (len(frames) % per_block) * rate * 2 // 50
    tail = inbound.flush()
    assert inbound.pending_bytes == 0 and inbound.flush() == b""
    # The same bytes in the same order: soxr's stream does not depend on the blocking.
    assert b"".join(outputs) + tail == per_frame_stream(frames, rate)


def test_stream_continues_after_a_flush() -> None:
    frames = frames_of(to_pcm(speech_like(16000, 0.5)), 640)
    inbound = InboundAudio(DecodePlan(16000, 1), 24000, 40)
    out = [inbound.feed(frames[0]), inbound.flush()]
    out += [inbound.feed(frame) for frame in frames[1:]] + [inbound.flush()]
    assert b"".join(out) == per_frame_stream(frames, 16000)


def test_twenty_ms_sends_every_frame_as_before() -> None:
    frames = frames_of(to_pcm(speech_like(16000, 0.3)), 640)
    inbound = InboundAudio(DecodePlan(16000, 1), 24000, 20)
    outputs = [inbound.feed(frame) for frame in frames]
    reference = StreamResampler(16000, 24000)
    assert outputs == [reference.process(frame) for frame in frames]
    assert inbound.pending_bytes == 0


def test_odd_stereo_frames_close_blocks_near_the_target() -> None:
    # 321-byte stereo frames carry 80 or 81 whole caller samples (about 10 ms at 8 kHz).
    caller = to_pcm(speech_like(8000, 1.0))
    stereo = np.column_stack(
        [np.frombuffer(caller, dtype="<i2"), np.zeros(8000, dtype="<i2")]
    ).tobytes()
    inbound = InboundAudio(DecodePlan(8000, 2), 24000, 40)
    decoder = InboundPcm(8000, 2)  # the same decoding, to know each frame's caller bytes
    blocks_ms: list[float] = []
    out = b""
    for frame in frames_of(stereo, 321):
        block = inbound.pending_bytes + len(decoder.feed(frame))
        out += inbound.feed(frame)
        if inbound.pending_bytes == 0:
            blocks_ms.append(block / 16)  # 16 bytes per ms at 8 kHz
    out += inbound.flush()
    # Each block closes within a millisecond of the 40 ms asked for.
    assert len(blocks_ms) == 24 and all(39 <= ms <= 41 for ms in blocks_ms)
    assert out == StreamResampler(8000, 24000).process(caller)


def test_append_json_is_the_documented_event() -> None:
    pcm = to_pcm(speech_like(24000, 0.04))
    event = json.loads(wire.append_audio(pcm))
    assert event == {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    assert wire.append_audio(b"").endswith('"audio":""}')


def test_uplink_append_ms_setting() -> None:
    assert NodeSettings.from_env(BASE).uplink_append_ms == 40
    assert NodeSettings.from_env({**BASE, "UPLINK_APPEND_MS": "20"}).uplink_append_ms == 20
    for bad in ("10", "500", "forty"):
        with pytest.raises(ConfigError, match="UPLINK_APPEND_MS"):
            NodeSettings.from_env({**BASE, "UPLINK_APPEND_MS": bad})
