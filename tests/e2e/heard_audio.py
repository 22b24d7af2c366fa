"""What the caller heard during a transfer, judged from the audio itself.

Shared by the handoff scenarios: the emulated caller's heard PCM (``MediaLegResult.heard_pcm``,
or the ``--out`` WAV of a rescued call) is cut into 20 ms windows and measured, and the
recordings it should contain (the hold loop, the person's voice, a model line) are located in
it by normalised correlation. Nothing here reads the emulator's own bookkeeping of who spoke
when, so an assertion built on these helpers checks the sound, not the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from local.emulator import CallResult
from local.emulator.person import PERSON_AUDIO
from local.emulator.wav import load_mono
from media_node.assets import load_hold
from tests.e2e.harness import best_match, pcm_array

WINDOW_MS = 20.0
#: A 20 ms window quieter than this (RMS, about -56 dBFS) is silence to a caller. The hold loop
#: never drops below about 15 only at its seam (one window), speech pauses are shorter than 1 s.
SILENCE_RMS = 50.0
#: The longest silence a caller may hear anywhere in a transfer.
MAX_SILENCE_MS = 1000.0
#: Length of the pieces of a recording that are looked for on their own.
PIECE_MS = 200.0
#: How well the person's voice must match on a supervised stream. The platform mixes them over
#: whatever the node still plays (the hold loop until the node sees the connection, then the
#: introduction), so no piece of their voice may be heard alone; another voice or line scores
#: far lower (below 0.5).
MIXED_VOICE_SCORE = 0.8


def window_rms(pcm: bytes, rate: int, window_ms: float = WINDOW_MS) -> np.ndarray:
    """RMS level of each whole window of s16le ``pcm``."""
    size = int(rate * window_ms / 1000)
    samples = pcm_array(pcm)
    count = len(samples) // size
    windows = samples[: count * size].reshape(count, size)
    return np.sqrt(np.mean(windows**2, axis=1))


def silences(pcm: bytes, rate: int, threshold: float = SILENCE_RMS) -> list[tuple[float, float]]:
    """Stretches of ``pcm`` below ``threshold``, as ``(start_ms, end_ms)`` from its start."""
    quiet = window_rms(pcm, rate) < threshold
    found: list[tuple[float, float]] = []
    start: int | None = None
    for index, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and start is None:
            start = index
        elif not is_quiet and start is not None:
            found.append((start * WINDOW_MS, index * WINDOW_MS))
            start = None
    return found


def longest_silence(pcm: bytes, rate: int) -> tuple[float, float]:
    """The longest silent stretch of ``pcm`` as ``(start_ms, length_ms)``; ``(0, 0)`` if none."""
    stretches = silences(pcm, rate)
    if not stretches:
        return 0.0, 0.0
    start, end = max(stretches, key=lambda s: s[1] - s[0])
    return start, end - start


def assert_no_long_silence(
    pcm: bytes, rate: int, start_ms: float, end_ms: float, limit_ms: float = MAX_SILENCE_MS
) -> None:
    """Between ``start_ms`` and ``end_ms`` of ``pcm`` the caller never sat in silence longer
    than ``limit_ms``."""
    assert end_ms > start_ms, (start_ms, end_ms)
    bytes_per_ms = rate * 2 / 1000
    piece = pcm[int(start_ms * bytes_per_ms) & ~1 : int(end_ms * bytes_per_ms) & ~1]
    at, length = longest_silence(piece, rate)
    assert length <= limit_ms, (
        f"{length:.0f} ms of silence at {start_ms + at:.0f} ms"
        f" (checked {start_ms:.0f}–{end_ms:.0f} ms)"
    )


@dataclass(frozen=True)
class Found:
    """Where a recording lines up in the heard audio, and how well."""

    start_ms: float  # where the recording's first sample falls in the heard audio
    score: float  # normalised correlation of the best-matching piece (1.0 = an exact copy)


def locate(heard: bytes, recording: np.ndarray, rate: int, pieces: int = 12) -> Found:
    """Find ``recording`` (float samples at ``rate``) in ``heard``.

    Pieces of ``PIECE_MS`` spread over the recording are each looked for on their own, so a
    stretch where something else plays over it (the receptionist's introduction over the
    person's first words) does not hide the rest; the best piece says where the recording starts.
    """
    size = int(PIECE_MS / 1000 * rate)
    best = Found(0.0, 0.0)
    for start in np.linspace(0, max(0, len(recording) - size), num=pieces).astype(int):
        piece = recording[start : start + size]
        if not np.any(np.abs(piece) > 1):  # silence matches anything
            continue
        offset, score = best_match(heard, piece)
        if score > best.score:
            best = Found((offset - start) / rate * 1000, score)
    return best


def person_voice(rate: int) -> np.ndarray:
    """The person's recorded voice (``local/audio/person/hello.wav``) at ``rate``."""
    return pcm_array(load_mono(PERSON_AUDIO, rate))


def hold_loop(rate: int) -> np.ndarray:
    """One round of the media node's hold loop at ``rate``."""
    return pcm_array(load_hold(rate))


def heard_pcm(result: CallResult) -> tuple[bytes, int]:
    """What the caller heard on the stream and its rate."""
    assert result.media is not None
    return result.media.heard_pcm, result.media.playback_rate


def slice_ms(pcm: bytes, rate: int, start_ms: float, end_ms: float | None = None) -> bytes:
    """``pcm`` between two moments (ms from its start; to the end when ``end_ms`` is None)."""
    bytes_per_ms = rate * 2 / 1000
    end = len(pcm) if end_ms is None else int(end_ms * bytes_per_ms) & ~1
    return pcm[int(max(0.0, start_ms) * bytes_per_ms) & ~1 : end]


def first_audio_after(pcm: bytes, rate: int, after_ms: float) -> float:
    """The first non-silent window at or after ``after_ms`` (ms from the start of ``pcm``)."""
    levels = window_rms(slice_ms(pcm, rate, after_ms), rate)
    loud = np.flatnonzero(levels >= SILENCE_RMS)
    assert len(loud), f"nothing was heard after {after_ms:.0f} ms"
    return after_ms + float(loud[0]) * WINDOW_MS


def assert_recording_heard(
    pcm: bytes, rate: int, recording: np.ndarray, what: str, min_score: float = 0.95
) -> Found:
    """``recording`` is in ``pcm`` as a near copy; returns where."""
    found = locate(pcm, recording, rate)
    assert found.score > min_score, f"{what} was not heard (best match {found.score:.2f})"
    return found
