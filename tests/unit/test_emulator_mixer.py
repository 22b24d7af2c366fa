"""The emulator's conference-bridge mixer: sums sample by sample, saturates, places voices on
playout ticks."""

from __future__ import annotations

import numpy as np
import pytest

from local.emulator.mixer import VoiceOverlay, mix

FRAME = 320  # 20 ms at 16 kHz


def pcm(values: list[int] | np.ndarray) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


def test_overlapping_signals_are_summed_sample_by_sample() -> None:
    node = np.array([100, -200, 300, 0], dtype=np.int16)
    person = np.array([1, 2, -3, 4], dtype=np.int16)
    assert mix(node, person).tolist() == [101, -198, 297, 4]


def test_one_side_silent_leaves_the_other_unchanged() -> None:
    voice = np.array([5000, -7000, 32767, -32768], dtype=np.int16)
    silence = np.zeros(4, dtype=np.int16)
    assert mix(voice, silence).tolist() == voice.tolist()
    assert mix(silence, voice).tolist() == voice.tolist()


def test_a_shorter_signal_is_silence_past_its_end() -> None:
    long = np.array([10, 20, 30, 40], dtype=np.int16)
    short = np.array([1, 1], dtype=np.int16)
    assert mix(long, short).tolist() == [11, 21, 30, 40]
    assert mix(short, long).tolist() == [11, 21, 30, 40]


def test_loud_sums_saturate_instead_of_wrapping() -> None:
    loud = np.array([30000, -30000, 32767, -32768, 20000], dtype=np.int16)
    also = np.array([10000, -10000, 1, -1, -25000], dtype=np.int16)
    mixed = mix(loud, also)
    assert mixed.dtype == np.int16
    assert mixed.tolist() == [32767, -32768, 32767, -32768, -5000]


def test_a_voice_plays_from_its_tick_frame_by_frame() -> None:
    overlay = VoiceOverlay(FRAME)
    samples = np.arange(1, 2 * FRAME + 101, dtype=np.int16)  # two frames and a bit
    overlay.add(pcm(samples), start_tick=3)
    assert overlay.frame(2) is None
    first, second, tail = overlay.frame(3), overlay.frame(4), overlay.frame(5)
    assert first is not None and second is not None and tail is not None
    assert first.tolist() == samples[:FRAME].tolist()
    assert second.tolist() == samples[FRAME : 2 * FRAME].tolist()
    # The last partial frame is padded with silence to a whole tick.
    assert len(tail) == FRAME
    assert tail[:100].tolist() == samples[2 * FRAME :].tolist() and not tail[100:].any()
    assert overlay.frame(6) is None


def test_two_voices_at_once_are_mixed_with_each_other() -> None:
    overlay = VoiceOverlay(FRAME)
    overlay.add(pcm(np.full(FRAME * 2, 20000)), start_tick=0)
    overlay.add(pcm(np.full(FRAME, 20000)), start_tick=1)
    only_first = overlay.frame(0)
    both = overlay.frame(1)
    assert only_first is not None and set(only_first.tolist()) == {20000}
    assert both is not None and set(both.tolist()) == {32767}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        VoiceOverlay(FRAME).add(b"\x00\x01\x02", start_tick=0)
    with pytest.raises(ValueError, match="positive"):
        VoiceOverlay(0)
