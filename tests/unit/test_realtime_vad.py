"""The Realtime double's energy VAD against a block-by-block reference, however audio is cut.

The double judges each ``input_audio_buffer.append`` in one vectorised pass and carries the
unfinished 32 ms frame over to the next append. The reference below judges a whole recording
block by block with the textbook test (frame RMS in dBFS above the threshold, onset debounce,
silence hangover). Both must report the same starts and stops at the same milliseconds for
appends of 10, 20, 37 or 60 ms, odd byte counts included, and through the session protocol.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from doubles.openai_realtime.audio import (
    decode_g711,
    encode_g711,
    load_wav,
    synthesize_speech,
)
from doubles.openai_realtime.input import InputAudioBuffer
from doubles.openai_realtime.protocol import RealtimeSessionProtocol
from doubles.openai_realtime.response import Pacing
from doubles.openai_realtime.script import Script
from doubles.openai_realtime.vad import EnergyVad

FRAME_MS = 32
CALLER_LINES = Path(__file__).resolve().parents[2] / "local" / "audio" / "caller"
CHUNKINGS_MS = [10, 20, 37, 60]

Event = tuple[str, int]


def reference_events(
    samples: np.ndarray,
    rate: int,
    *,
    threshold: float = 0.5,
    silence_ms: int = 500,
    min_speech_ms: int = 64,
) -> list[Event]:
    """Speech starts and stops of a whole recording, judged one 32 ms block at a time."""
    level_dbfs = -60.0 + 40.0 * min(max(threshold, 0.0), 1.0)
    frame = rate * FRAME_MS // 1000
    onset_frames = max(1, math.ceil(min_speech_ms / FRAME_MS))
    silence_frames = max(1, math.ceil(silence_ms / FRAME_MS))
    events: list[Event] = []
    speaking = False
    loud_run = quiet_run = 0
    for index in range(len(samples) // frame):
        block = samples[index * frame : (index + 1) * frame].astype(np.float64)
        if _is_loud(float(np.sum(block * block)), frame, level_dbfs):
            loud_run, quiet_run = loud_run + 1, 0
            if not speaking and loud_run >= onset_frames:
                speaking = True
                events.append(("start", (index + 1 - loud_run) * FRAME_MS))
        else:
            loud_run = 0
            if speaking:
                quiet_run += 1
                if quiet_run >= silence_frames:
                    speaking, quiet_run = False, 0
                    events.append(("stop", (index + 1) * FRAME_MS))
    return events


def _is_loud(energy: float, frame: int, level_dbfs: float) -> bool:
    rms = math.sqrt(energy / frame)
    return rms > 0 and 20 * math.log10(rms / 32768) > level_dbfs


# -- Signals -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def caller_lines(rate: int) -> tuple[np.ndarray, ...]:
    """The call emulator's recorded caller utterances (espeak-ng speech) at ``rate``."""
    return tuple(
        np.frombuffer(load_wav(path, rate), dtype="<i2")
        for path in sorted(CALLER_LINES.glob("*.wav"))
    )


@functools.lru_cache(maxsize=32)
def caller_audio(rate: int, seed: int, seconds: float = 24.0) -> np.ndarray:
    """Speech at several levels between pauses of line noise and near-threshold murmur.

    Recorded utterances and the double's own speech-like signal, each scaled to telephone
    level, a quiet level, or one whose frames straddle the -40 dBFS default threshold, so
    decisions flip often; pauses vary from shorter than to longer than the hangover.
    """
    rng = np.random.default_rng(seed)
    lines = caller_lines(rate)
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * rate:
        choice = rng.integers(0, 3)
        if choice == 0:
            speech = lines[rng.integers(0, len(lines))].astype(np.float64)
        elif choice == 1:
            text = "".join(rng.choice(list("karibu sana, asante."), size=rng.integers(4, 30)))
            speech = np.frombuffer(synthesize_speech(text, rate=rate), dtype="<i2").astype(float)
        else:
            count = round(rate * rng.uniform(0.2, 1.2))
            wobble = 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(1, 6) * np.arange(count) / rate)
            speech = rng.standard_normal(count) * 328 * wobble  # about -40 dBFS
        parts.append(speech * rng.choice([1.0, 0.1, 0.03, 0.012]))
        pause_s = rng.uniform(0.05, 0.4) if rng.random() < 0.4 else rng.uniform(0.75, 1.6)
        pause = round(rate * pause_s)
        parts.append(rng.standard_normal(pause) * 16)  # line noise near -66 dBFS
        total += parts[-2].size + pause
    signal = np.concatenate(parts)[: round(seconds * rate)]
    samples = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    samples.flags.writeable = False  # shared between tests through the cache
    return samples


def cut(samples: np.ndarray, rate: int, chunk_ms: int) -> list[np.ndarray]:
    """``samples`` as consecutive appends of ``chunk_ms``."""
    step = rate * chunk_ms // 1000
    return [samples[start : start + step] for start in range(0, len(samples), step)]


def feed_all(vad: EnergyVad, chunks: list[np.ndarray]) -> list[Event]:
    return [(event.kind, event.at_ms) for chunk in chunks for event in vad.feed(chunk)]


# -- EnergyVad ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_ms", CHUNKINGS_MS)
@pytest.mark.parametrize("rate", [24_000, 8_000])
@pytest.mark.parametrize(
    ("threshold", "silence_ms"), [(0.5, 500), (0.3, 200), (0.62, 700), (0.0, 100)]
)
def test_vad_matches_block_reference(
    chunk_ms: int, rate: int, threshold: float, silence_ms: int
) -> None:
    for seed in range(2):
        samples = caller_audio(rate, seed)
        expected = reference_events(samples, rate, threshold=threshold, silence_ms=silence_ms)
        vad = EnergyVad(rate, threshold=threshold, silence_duration_ms=silence_ms)
        assert feed_all(vad, cut(samples, rate, chunk_ms)) == expected
        assert sum(kind == "start" for kind, _ in expected) >= 3
        assert sum(kind == "stop" for kind, _ in expected) >= 2


def test_vad_matches_reference_for_irregular_appends() -> None:
    rng = np.random.default_rng(11)
    samples = caller_audio(24_000, seed=5)
    sizes = rng.choice([1, 2, 479, 480, 767, 768, 769, 1536, 2000], size=len(samples))
    bounds = np.cumsum(sizes)
    chunks = np.split(samples, bounds[bounds < len(samples)])
    vad = EnergyVad(24_000)
    assert feed_all(vad, chunks) == reference_events(samples, 24_000)


def test_vad_continues_after_reset_and_reconfiguration() -> None:
    rate = 24_000
    samples = caller_audio(rate, seed=3)
    half = len(samples) // 2 + 333  # mid-frame: the unfinished frame must carry over
    first, second = samples[:half], samples[half:]
    vad = EnergyVad(rate, threshold=0.5, silence_duration_ms=500)
    events = feed_all(vad, cut(first, rate, 20))
    vad.configure(threshold=0.4, silence_duration_ms=300)
    vad.reset()
    events += feed_all(vad, cut(second, rate, 20))

    frame = rate * FRAME_MS // 1000
    boundary = half // frame * frame  # the frame in progress is judged with the new settings
    expected = reference_events(samples[:boundary], rate)
    # The reset forgets any speech in progress: no stop for it, and the runs start afresh.
    later = reference_events(samples[boundary:], rate, threshold=0.4, silence_ms=300)
    offset = boundary // frame * FRAME_MS
    expected += [(kind, at_ms + offset) for kind, at_ms in later]
    assert events == expected
    assert len(later) >= 4


def _squares(total: int, parts: int) -> list[int] | None:
    """``parts`` non-negative integers whose squares add up to ``total``, if any."""
    root = math.isqrt(total)
    if parts == 1:
        return [root] if root * root == total else None
    for first in range(root, -1, -1):
        rest = _squares(total - first * first, parts - 1)
        if rest is not None:
            return [first, *rest]
    return None


def frame_with_energy(energy: int, frame: int) -> np.ndarray:
    """An int16 frame whose squared samples add up to exactly ``energy``."""
    level = math.isqrt(energy // frame)
    rest = _squares(energy - (frame - 4) * level * level, 4)
    assert rest is not None and max(rest) < 32768
    return np.array([level] * (frame - 4) + rest, dtype=np.int16)


@pytest.mark.parametrize("rate", [24_000, 8_000])
@pytest.mark.parametrize("threshold", [0.0, 0.25, 0.5, 0.73, 1.0])
def test_vad_decides_frames_at_the_threshold_like_the_reference(
    rate: int, threshold: float
) -> None:
    frame = rate * FRAME_MS // 1000
    level_dbfs = -60.0 + 40.0 * threshold
    boundary = math.floor(frame * (32768 * 10 ** (level_dbfs / 20)) ** 2)
    while _is_loud(boundary, frame, level_dbfs):
        boundary -= 1
    while not _is_loud(boundary + 1, frame, level_dbfs):
        boundary += 1
    quiet, loud = boundary, boundary + 1  # the loudest quiet frame and the quietest loud one
    energies = [quiet, loud, quiet, quiet - 1, loud + 1, loud, quiet, loud, loud, 0, quiet]
    samples = np.concatenate([frame_with_energy(energy, frame) for energy in energies])
    expected = reference_events(samples, rate, threshold=threshold, min_speech_ms=32, silence_ms=32)
    assert expected == [
        ("start", 32),
        ("stop", 96),
        ("start", 128),
        ("stop", 224),
        ("start", 224),
        ("stop", 320),
    ]
    for chunk_ms in CHUNKINGS_MS:
        vad = EnergyVad(rate, threshold=threshold, min_speech_ms=32, silence_duration_ms=32)
        assert feed_all(vad, cut(samples, rate, chunk_ms)) == expected


# -- Through the session protocol -----------------------------------------------------------


def open_session(input_format: str, detection: dict[str, Any]) -> RealtimeSessionProtocol:
    protocol = RealtimeSessionProtocol(
        model="gpt-realtime", responder=Script(), pacing=Pacing(transcription_delay_s=0.0)
    )
    update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": input_format}, "turn_detection": detection}},
        },
    }
    protocol.receive_text(json.dumps(update))
    return protocol


def append_frame(audio: bytes, *, compact: bool = True) -> str:
    """An append as the media node sends it (compact JSON) or as another client might."""
    event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    return json.dumps(event, separators=(",", ":")) if compact else json.dumps(event)


def speech_events(protocol: RealtimeSessionProtocol) -> list[Event]:
    kinds = {"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"}
    return [
        (event["type"].rsplit("_", 1)[1], event.get("audio_start_ms", event.get("audio_end_ms")))
        for event in protocol.server_events
        if event["type"] in kinds
    ]


def expected_speech_events(vad_events: list[Event], prefix_ms: int) -> list[Event]:
    """The ``speech_started``/``speech_stopped`` timings the session reports for VAD events.

    Starts move back by the prefix padding, but not before the previous commit (each stop
    commits the buffer up to it).
    """
    reported: list[Event] = []
    committed_to = 0
    for kind, at_ms in vad_events:
        if kind == "start":
            reported.append(("started", max(committed_to, at_ms - prefix_ms)))
        else:
            reported.append(("stopped", at_ms))
            committed_to = at_ms
    return reported


@pytest.mark.parametrize("chunk_ms", CHUNKINGS_MS)
@pytest.mark.parametrize("input_format", ["audio/pcm", "audio/pcmu"])
def test_session_reports_reference_speech_timings(chunk_ms: int, input_format: str) -> None:
    detection = {
        "type": "server_vad",
        "threshold": 0.45,
        "silence_duration_ms": 400,
        "prefix_padding_ms": 200,
    }
    protocol = open_session(input_format, detection)
    if input_format == "audio/pcm":
        rate, audio = 24_000, caller_audio(24_000, seed=8).tobytes()
        heard = np.frombuffer(audio, dtype="<i2")
        step = chunk_ms * 48
    else:
        rate, audio = 8_000, encode_g711(caller_audio(8_000, seed=8), law="ulaw")
        heard = decode_g711(audio, law="ulaw")
        step = chunk_ms * 8
    for start in range(0, len(audio), step):
        protocol.receive_text(append_frame(audio[start : start + step]))
    vad_events = reference_events(heard, rate, threshold=0.45, silence_ms=400)
    assert speech_events(protocol) == expected_speech_events(vad_events, prefix_ms=200)
    assert len(vad_events) >= 8
    commits = [e for e in protocol.server_events if e["type"] == "input_audio_buffer.committed"]
    assert len(commits) == sum(kind == "stop" for kind, _ in vad_events)


def test_session_handles_odd_byte_appends_like_whole_samples() -> None:
    audio = caller_audio(24_000, seed=4).tobytes()
    detection = {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500}
    protocol = open_session("audio/pcm", detection)
    for start in range(0, len(audio), 1001):
        protocol.receive_text(append_frame(audio[start : start + 1001]))
    vad_events = reference_events(np.frombuffer(audio, dtype="<i2"), 24_000)
    assert speech_events(protocol) == expected_speech_events(vad_events, prefix_ms=300)
    assert len(vad_events) >= 6
    assert protocol.input_audio_ms == pytest.approx(len(audio) / 48)


def test_compact_appends_behave_like_fully_parsed_ones() -> None:
    audio = caller_audio(24_000, seed=6).tobytes()
    sessions = []
    for compact in (True, False):
        protocol = open_session("audio/pcm", {"type": "server_vad"})
        for start in range(0, len(audio), 960):
            protocol.receive_text(append_frame(audio[start : start + 960], compact=compact))
        protocol.receive_text('{"type":"input_audio_buffer.append","audio":"QUJD QUJD"}')
        protocol.receive_text('{"type":"input_audio_buffer.append","audio":"QUJD\\/A=="}')
        sessions.append(protocol)
    fast, parsed = sessions
    assert speech_events(fast) == speech_events(parsed)
    assert len(speech_events(fast)) >= 6
    assert fast.input_audio_ms == parsed.input_audio_ms
    assert fast.input_audio_ms == pytest.approx((len(audio) + 4) / 48)
    errors = [e["error"] for e in fast.server_events if e["type"] == "error"]
    assert errors == [
        {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "Invalid 'audio': expected base64-encoded audio.",
            "param": "audio",
            "event_id": None,
        }
    ]
    assert [e["error"] for e in parsed.server_events if e["type"] == "error"] == errors
    assert [(e.type, e.payload) for e in fast.client_events] == [
        (e.type, e.payload) for e in parsed.client_events
    ]


def test_input_buffer_keeps_audio_only_when_recording() -> None:
    audio = caller_audio(24_000, seed=2, seconds=2.0).tobytes()
    recording, plain = InputAudioBuffer(record=True), InputAudioBuffer()
    for buffer in (recording, plain):
        buffer.configure("audio/pcm", {"type": "server_vad"})
        for start in range(0, len(audio), 1001):
            buffer.append(audio[start : start + 1001])
    assert recording.audio == audio
    assert plain.audio is None
    assert recording.total_ms == plain.total_ms == pytest.approx(2000.0)
