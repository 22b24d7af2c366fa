"""The e2e tests' judges of heard audio fail when they should: silence measured in 20 ms RMS
windows, recordings found by correlation even with something else mixed over part of them."""

from __future__ import annotations

import numpy as np
import pytest

from local.emulator.mixer import mix
from tests.e2e.heard_audio import assert_no_long_silence, locate, longest_silence, silences

RATE = 16000


def tone(seconds: float, hz: float = 440.0, level: float = 3000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def pcm(*parts: np.ndarray) -> bytes:
    return np.concatenate(parts).astype("<i2").tobytes()


def test_silences_are_found_to_the_window() -> None:
    audio = pcm(tone(0.5), quiet(1.2), tone(0.3), quiet(0.4), tone(0.2))
    assert silences(audio, RATE) == [(500.0, 1700.0), (2000.0, 2400.0)]
    assert longest_silence(audio, RATE) == (500.0, 1200.0)


def test_a_silence_over_a_second_fails_and_one_under_passes() -> None:
    gap = pcm(tone(0.5), quiet(1.2), tone(0.5))
    with pytest.raises(AssertionError, match="1200 ms of silence at 500 ms"):
        assert_no_long_silence(gap, RATE, 0.0, 2200.0)
    short = pcm(tone(0.5), quiet(0.8), tone(0.5))
    assert_no_long_silence(short, RATE, 0.0, 1800.0)
    # Only the stretch asked about is judged.
    assert_no_long_silence(gap, RATE, 1500.0, 2200.0)


def test_a_quiet_hum_is_still_silence_to_a_caller() -> None:
    hum = tone(1.5, level=20.0)  # about -64 dBFS
    with pytest.raises(AssertionError):
        assert_no_long_silence(pcm(hum), RATE, 0.0, 1500.0)


def test_a_recording_is_located_even_half_covered_by_another_voice() -> None:
    rng = np.random.default_rng(3)
    voice = (rng.standard_normal(RATE) * 3000).astype(np.int16)  # one second
    other = (rng.standard_normal(RATE // 2) * 3000).astype(np.int16)
    heard = np.concatenate([quiet(0.7), voice, quiet(0.3)])
    start = int(0.7 * RATE)
    heard[start : start + len(other)] = mix(heard[start : start + len(other)], other)
    found = locate(pcm(heard), voice.astype(np.float64), RATE)
    assert found.score > 0.99 and found.start_ms == pytest.approx(700.0)
    # Something else entirely is not found.
    stranger = (rng.standard_normal(RATE) * 3000).astype(np.float64)
    assert locate(pcm(heard), stranger, RATE).score < 0.5
