"""Framer: exact frames out of bursty PCM, nothing lost at the end."""

from __future__ import annotations

import numpy as np
import pytest

from media_node.audio import Framer


def test_bursty_input_becomes_exact_frames_in_order() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    cuts = np.sort(rng.integers(0, len(data), 30))
    framer = Framer(640)

    frames = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        frames += framer.push(data[start:end])
        assert framer.pending_bytes == end % 640

    assert all(len(frame) == 640 for frame in frames)
    assert b"".join(frames) == data[: len(data) - len(data) % 640]


def test_flush_pads_the_last_partial_frame_with_silence() -> None:
    framer = Framer(640)

    assert framer.push(b"\x01\x02" * 400) == [b"\x01\x02" * 320]
    last = framer.flush()

    assert last == b"\x01\x02" * 80 + bytes(480)
    assert framer.pending_bytes == 0
    assert framer.flush() is None


def test_whole_frame_passes_through() -> None:
    framer = Framer(4)

    assert framer.push(b"abcd") == [b"abcd"]
    assert framer.push(b"ab") == []
    assert framer.push(b"cdefgh") == [b"abcd", b"efgh"]
    assert framer.pending_bytes == 0


def test_clear_drops_the_partial_frame() -> None:
    framer = Framer(640)
    framer.push(bytes(1000))

    assert framer.clear() == 360
    assert framer.pending_bytes == 0
    assert framer.push(bytes(640)) == [bytes(640)]


@pytest.mark.parametrize("size", [0, -2, 641])
def test_invalid_frame_size_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="frame_bytes"):
        Framer(size)
