"""The browser call's line recording: both sides on one clock, cut where killAudio cut."""

from __future__ import annotations

import io
import wave

import numpy as np

from mapokezi_cli.console.call_recording import LineRecorder


def _samples(wav: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav)) as reader:
        assert (reader.getframerate(), reader.getnchannels()) == (8000, 1)
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")


def test_receptionist_audio_lands_at_its_arrival_and_is_mixed_with_the_caller() -> None:
    recorder = LineRecorder(8000)
    recorder.caller(np.full(8000, 100, dtype="<i2").tobytes())  # 1 s of caller
    recorder.receptionist(np.full(800, 1000, dtype="<i2").tobytes(), at_ms=250)  # 100 ms
    recorder.receptionist(np.full(800, 2000, dtype="<i2").tobytes(), at_ms=260)  # queued after
    mixed = _samples(recorder.wav())
    assert len(mixed) == 8000
    assert mixed[1999] == 100 and mixed[2000] == 1100 and mixed[2799] == 1100
    assert mixed[2800] == 2100 and mixed[3599] == 2100 and mixed[3600] == 100


def test_kill_drops_what_was_not_played_yet() -> None:
    recorder = LineRecorder(8000)
    recorder.receptionist(np.full(8000, 500, dtype="<i2").tobytes(), at_ms=0)  # 1 s queued
    recorder.kill(at_ms=300)
    recorder.receptionist(np.full(80, 700, dtype="<i2").tobytes(), at_ms=600)
    mixed = _samples(recorder.wav())
    assert mixed[2399] == 500 and mixed[2400] == 0
    assert mixed[4800] == 700 and len(mixed) == 4880
