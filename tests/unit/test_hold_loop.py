"""The hold loop: reproducible from its script, seamless, soft, and never silent."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from media_node.assets import load_hold
from media_node.assets.hold_loop import LOOP_SECONDS, render

ASSETS = Path(__file__).resolve().parents[2] / "media_node" / "assets"


@pytest.mark.parametrize("rate", [16000, 8000])
def test_committed_files_are_what_the_script_renders(rate: int) -> None:
    with wave.open(str(ASSETS / f"hold_{rate // 1000}k.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, rate)
        committed = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(int)
    rendered = np.frombuffer(render(rate), "<i2").astype(int)
    assert len(committed) == len(rendered) == LOOP_SECONDS * rate
    assert np.max(np.abs(committed - rendered)) <= 1  # float rounding may differ by one step
    assert load_hold(rate) == (ASSETS / f"hold_{rate // 1000}k.wav").read_bytes()[44:]


@pytest.mark.parametrize("rate", [16000, 8000])
def test_loop_is_seamless_soft_and_never_silent(rate: int) -> None:
    samples = np.frombuffer(render(rate), "<i2").astype(float) / 32768
    assert samples[0] == 0.0 and samples[-1] == 0.0  # no click where it repeats
    assert 0.15 < np.max(np.abs(samples)) <= 0.21  # about -14 dBFS at the loudest
    window = rate // 4
    levels = [
        np.sqrt(np.mean(samples[i : i + window] ** 2))
        for i in range(0, len(samples) - window, window)
    ]
    assert min(levels[:-1]) > 0.003  # every quarter second but the faded tail is audible
