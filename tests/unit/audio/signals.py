"""Test signals and measurements shared by the audio tests."""

from __future__ import annotations

import numpy as np

FULL_SCALE = 32767


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone as float64 samples in [-1, 1]."""
    n = np.arange(round(rate * seconds))
    return amplitude * np.sin(2 * np.pi * freq * n / rate)


def speech_like(rate: int, seconds: float, seed: int = 7) -> np.ndarray:
    """Tones across the voice band plus band-limited noise, float64 in [-1, 1].

    Content stays below 0.4 × rate so it survives a round trip through 24 kHz.
    """
    rng = np.random.default_rng(seed)
    count = round(rate * seconds)
    top = 0.4 * rate
    signal = sum(
        amp * tone(freq, rate, seconds, 1.0)
        for freq, amp in ((180, 0.25), (420, 0.2), (1130, 0.12), (2350, 0.06))
        if freq < top
    )
    spectrum = np.fft.rfft(rng.standard_normal(count))
    freqs = np.fft.rfftfreq(count, 1 / rate)
    spectrum[(freqs < 100) | (freqs > top)] = 0
    noise = np.fft.irfft(spectrum, count)
    signal = signal + 0.05 * noise / np.std(noise)
    return 0.7 * signal / np.max(np.abs(signal))


def to_pcm(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as int16 little-endian bytes."""
    return np.clip(np.round(samples * FULL_SCALE), -32768, 32767).astype("<i2").tobytes()


def from_pcm(pcm: bytes) -> np.ndarray:
    """int16 little-endian bytes as float64 samples in [-1, 1]."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / FULL_SCALE


def chunks(data: bytes, size: int) -> list[bytes]:
    """`data` cut into pieces of `size` bytes (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def error_db(actual: np.ndarray, reference: np.ndarray) -> float:
    """RMS of the difference relative to the RMS of the reference, in dB."""
    noise = np.sqrt(np.mean((actual - reference) ** 2))
    signal = np.sqrt(np.mean(reference**2))
    return 20 * np.log10(max(noise, 1e-12) / signal)


def magnitude_spectrum(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin frequencies and Hann-windowed magnitude spectrum."""
    windowed = samples * np.hanning(len(samples))
    magnitude = np.abs(np.fft.rfft(windowed))
    return np.fft.rfftfreq(len(samples), 1 / rate), magnitude


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency of the strongest spectral peak, in Hz."""
    freqs, magnitude = magnitude_spectrum(samples, rate)
    return float(freqs[np.argmax(magnitude)])


def level_db(samples: np.ndarray, rate: int, freq: float, width: float = 50.0) -> float:
    """Peak magnitude within `width` Hz of `freq`, in dB (absolute, for comparisons)."""
    freqs, magnitude = magnitude_spectrum(samples, rate)
    band = np.abs(freqs - freq) <= width
    return 20 * np.log10(max(float(np.max(magnitude[band])), 1e-12))
