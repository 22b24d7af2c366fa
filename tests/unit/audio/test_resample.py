"""StreamResampler on real signals through real soxr."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from media_node.audio import Framer, StreamResampler, frame_bytes
from tests.unit.audio.signals import (
    chunks,
    error_db,
    from_pcm,
    level_db,
    peak_frequency,
    speech_like,
    to_pcm,
    tone,
)

RATE_PAIRS = [(16000, 24000), (24000, 16000), (8000, 24000), (24000, 8000)]


def resample_chunked(in_rate: int, out_rate: int, pcm: bytes, chunk_ms: float | None) -> bytes:
    """Runs `pcm` through a fresh resampler in chunks of `chunk_ms` (None: one chunk), flushed."""
    resampler = StreamResampler(in_rate, out_rate)
    size = len(pcm) if chunk_ms is None else 2 * round(in_rate * chunk_ms / 1000)
    return b"".join(resampler.process(piece) for piece in chunks(pcm, size)) + resampler.flush()


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
@pytest.mark.parametrize("chunk_ms", [10, 20, 37])
def test_output_does_not_depend_on_chunking(in_rate: int, out_rate: int, chunk_ms: int) -> None:
    pcm = to_pcm(speech_like(in_rate, 1.0))
    one_shot = from_pcm(resample_chunked(in_rate, out_rate, pcm, None))
    chunked = from_pcm(resample_chunked(in_rate, out_rate, pcm, chunk_ms))

    assert len(chunked) == len(one_shot)
    assert error_db(chunked, one_shot) < -80


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_tone_keeps_its_frequency(in_rate: int, out_rate: int, freq: float) -> None:
    out = from_pcm(resample_chunked(in_rate, out_rate, to_pcm(tone(freq, in_rate, 1.0)), 20))

    # One second of output: FFT bins are 1 Hz apart.
    assert peak_frequency(out, out_rate) == pytest.approx(freq, abs=1.0)


def test_alias_of_5khz_is_rejected_going_down_to_8khz() -> None:
    reference = from_pcm(resample_chunked(24000, 8000, to_pcm(tone(1000, 24000, 1.0)), 20))
    folded = from_pcm(resample_chunked(24000, 8000, to_pcm(tone(5000, 24000, 1.0)), 20))

    rejection = level_db(reference, 8000, 1000) - level_db(folded, 8000, 3000)
    assert rejection >= 60
    # The same measurement sees the alias at full level when nothing filters it out.
    decimated = from_pcm(to_pcm(tone(5000, 24000, 1.0)))[::3]
    assert level_db(reference, 8000, 1000) - level_db(decimated, 8000, 3000) < 1


def boundary_error(in_rate: int, out_rate: int, out: np.ndarray, freq: float) -> float:
    """Largest deviation from the ideal tone at the output rate, ignoring the first/last 10 ms."""
    ideal = tone(freq, out_rate, len(out) / out_rate)
    edge = out_rate // 100
    return float(np.max(np.abs(out - ideal)[edge:-edge]))


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_no_clicks_at_chunk_boundaries(in_rate: int, out_rate: int) -> None:
    pcm = to_pcm(tone(440, in_rate, 0.5))

    stateful = from_pcm(resample_chunked(in_rate, out_rate, pcm, 20))
    assert boundary_error(in_rate, out_rate, stateful, 440) < 10 ** (-60 / 20) * 0.5

    # The detector does see clicks: restarting the filter every 20 ms makes them.
    per_chunk = (
        np.concatenate(
            [
                soxr.resample(np.frombuffer(piece, "<i2").astype(np.float32), in_rate, out_rate)
                for piece in chunks(pcm, frame_bytes(in_rate))
            ]
        )
        / 32767
    )
    assert boundary_error(in_rate, out_rate, per_chunk, 440) > 10 ** (-40 / 20) * 0.5


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_flush_returns_the_tail_of_a_reply(in_rate: int, out_rate: int) -> None:
    pcm = to_pcm(speech_like(in_rate, 0.73))
    resampler = StreamResampler(in_rate, out_rate)

    body = b"".join(resampler.process(piece) for piece in chunks(pcm, frame_bytes(in_rate)))
    tail = resampler.flush()

    assert tail, "soxr held nothing back, so this test would not notice a lost tail"
    expected = len(pcm) // 2 * out_rate / in_rate
    assert abs((len(body) + len(tail)) // 2 - expected) < out_rate * 0.020
    # Through the framer the padded total is a whole number of 20 ms frames covering it all.
    framer = Framer(frame_bytes(out_rate))
    frames = framer.push(body + tail)
    last = framer.flush()
    framed = len(frames) + (last is not None)
    assert framed == -(-(len(body) + len(tail)) // frame_bytes(out_rate))


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_next_reply_after_flush_is_processed_like_the_first(in_rate: int, out_rate: int) -> None:
    pcm = to_pcm(speech_like(in_rate, 0.3))
    resampler = StreamResampler(in_rate, out_rate)

    first = b"".join(resampler.process(p) for p in chunks(pcm, 640)) + resampler.flush()
    second = b"".join(resampler.process(p) for p in chunks(pcm, 640)) + resampler.flush()

    assert first == second
    assert resampler.flush() == b""


def test_clear_drops_history_and_pending_output() -> None:
    pcm = to_pcm(speech_like(24000, 0.3))
    fresh = resample_chunked(24000, 16000, pcm, 20)
    resampler = StreamResampler(24000, 16000)

    resampler.process(to_pcm(tone(2000, 24000, 0.1)))
    resampler.clear()
    after_clear = b"".join(resampler.process(p) for p in chunks(pcm, 960)) + resampler.flush()

    assert after_clear == fresh


def test_overshoot_is_clipped_not_wrapped() -> None:
    n = np.arange(16000)
    square = np.where(np.sin(2 * np.pi * 1000 * n / 16000) >= 0, 32767, -32768)
    pcm = square.astype("<i2").tobytes()

    out = np.frombuffer(resample_chunked(16000, 24000, pcm, 20), "<i2").astype(np.int32)
    exact = soxr.resample(square.astype(np.float64), 16000, 24000, quality="HQ")

    assert np.max(np.abs(exact)) > 32767, "no overshoot, so nothing was clipped"
    assert np.max(np.abs(out - np.clip(np.round(exact), -32768, 32767))) <= 1


def test_odd_length_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        StreamResampler(16000, 24000).process(b"\x00\x01\x02")


@pytest.mark.parametrize("quality", ["VHQ", "QQ", "LQ", "hq"])
def test_qualities_with_extra_delay_or_aliasing_are_refused(quality: str) -> None:
    with pytest.raises(ValueError, match="quality"):
        StreamResampler(24000, 8000, quality=quality)


def test_equal_rates_pass_audio_through() -> None:
    pcm = to_pcm(speech_like(16000, 0.1))
    resampler = StreamResampler(16000, 16000)

    assert resampler.process(pcm) == pcm
    assert resampler.flush() == b""


def test_conversion_to_pcm16_rounds_to_nearest_even_and_clips_exactly() -> None:
    from media_node.audio.resample import _to_pcm16

    samples = np.array(
        [0.5, 1.5, -0.5, -1.5, 2.4999, -2.5001, 32766.5, 32767.4, 40000.0, -32768.6, -1e9, 0.0],
        dtype=np.float32,
    )
    expected = np.clip(np.rint(samples.astype(np.float64)), -32768, 32767).astype("<i2")
    assert _to_pcm16(samples.copy()) == expected.tobytes()
    assert list(np.frombuffer(_to_pcm16(samples.copy()), "<i2")[:4]) == [0, 2, 0, -2]
    assert _to_pcm16(np.zeros(0, dtype=np.float32)) == b""
