"""InboundPcm: realigning and de-interleaving inbound L16 frames, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from media_node.audio import FrameTooLargeError, InboundPcm, frame_bytes, pcm_duration_ms


def ramp(count: int, start: int = 0, step: int = 1) -> np.ndarray:
    """Distinct int16 samples (wrapping), so any misalignment shows."""
    return ((np.arange(count) * step + start) % 65536 - 32768).astype("<i2")


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """`data` cut into pieces of the given sizes, cycling through them."""
    pieces, offset, index = [], 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        pieces.append(data[offset : offset + size])
        offset += size
        index += 1
    return pieces


@pytest.mark.parametrize(
    ("rate", "ms", "channels", "expected"),
    [(16000, 20, 1, 640), (8000, 20, 1, 320), (24000, 20, 1, 960), (16000, 20, 2, 1280)],
)
def test_frame_bytes(rate: int, ms: int, channels: int, expected: int) -> None:
    assert frame_bytes(rate, ms, channels) == expected


def test_frame_bytes_refuses_fractional_samples() -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        frame_bytes(11025, 20)


def test_pcm_duration_ms() -> None:
    assert pcm_duration_ms(640, 16000) == 20.0
    assert pcm_duration_ms(1280, 16000, channels=2) == 20.0


def test_odd_length_frames_are_realigned_exactly() -> None:
    samples = ramp(5000)
    decoder = InboundPcm(16000)

    out = [decoder.feed(piece) for piece in split(samples.tobytes(), [641, 639, 1, 3, 640, 7])]

    assert all(len(piece) % 2 == 0 for piece in out)
    assert b"".join(out) == samples.tobytes()
    assert decoder.pending_bytes == 0


def test_odd_trailing_byte_is_carried_until_the_next_frame() -> None:
    decoder = InboundPcm(8000)

    assert decoder.feed(b"\x01\x02\x03") == b"\x01\x02"
    assert decoder.pending_bytes == 1
    assert decoder.feed(b"\x04") == b"\x03\x04"
    assert decoder.pending_bytes == 0


@pytest.mark.parametrize("caller_channel", [0, 1])
def test_stereo_is_deinterleaved_to_the_callers_channel(caller_channel: int) -> None:
    caller, other = ramp(3000, start=5, step=3), ramp(3000, start=-9, step=-7)
    interleaved = np.column_stack([caller, other]).reshape(-1)
    if caller_channel == 1:
        interleaved = np.column_stack([other, caller]).reshape(-1)
    decoder = InboundPcm(16000, channels=2, caller_channel=caller_channel)

    pieces = split(interleaved.astype("<i2").tobytes(), [1280, 1, 2, 3, 1277, 5, 1283])
    out = b"".join(decoder.feed(piece) for piece in pieces)

    assert out == caller.tobytes()
    assert decoder.pending_bytes == 0


def test_partial_stereo_frame_waits_for_its_other_channel() -> None:
    decoder = InboundPcm(16000, channels=2)

    assert decoder.feed(b"\x01\x00\x02") == b""
    assert decoder.pending_bytes == 3
    assert decoder.feed(b"\x00") == b"\x01\x00"


def test_oversize_frame_is_refused_without_consuming_anything() -> None:
    samples = ramp(400).tobytes()
    decoder = InboundPcm(16000, max_frame_bytes=640)

    first = decoder.feed(samples[:101])
    with pytest.raises(FrameTooLargeError) as refused:
        decoder.feed(bytes(641))
    rest = decoder.feed(samples[101:741]) + decoder.feed(samples[741:])

    assert refused.value.size == 641
    assert refused.value.limit == 640
    assert "641 bytes" in str(refused.value)
    assert first + rest == samples


def test_default_cap_is_one_second_of_audio() -> None:
    decoder = InboundPcm(16000, channels=2)

    assert decoder.max_frame_bytes == 64000
    decoder.feed(bytes(64000))
    with pytest.raises(FrameTooLargeError):
        decoder.feed(bytes(64002))


@pytest.mark.parametrize(("channels", "caller_channel"), [(0, 0), (1, 1), (2, 2), (2, -1)])
def test_invalid_channel_layout_is_refused(channels: int, caller_channel: int) -> None:
    with pytest.raises(ValueError, match="channel"):
        InboundPcm(16000, channels=channels, caller_channel=caller_channel)
