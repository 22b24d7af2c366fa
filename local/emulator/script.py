"""What the caller says and when: a small script language and the frame-by-frame track.

Steps (one per line or separated by ``;``; ``#`` starts a comment):

- ``silence SECONDS``: stay quiet.
- ``say WAV [at SECONDS]``: speak a WAV file, now or at an absolute time after connect.
- ``wait-reply [QUIET_SECONDS] [timeout SECONDS]``: wait until the agent has spoken and then been
  quiet for ``QUIET_SECONDS`` (default 0.8).
- ``barge-in MS WAV``: wait for agent audio, then start speaking ``MS`` milliseconds after it
  was first heard.
- ``hangup [SECONDS]``: hang up, optionally after a pause.

A WAV name without a path is looked up in ``local/audio/caller/`` (``.wav`` may be left off).
After the last step the caller stays on the line, sending silence like a real phone.
Sans-I/O: ``CallerTrack.frame`` is called once per outgoing frame with the heard log.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from local.emulator.timeline import HeardLog, Utterance
from local.emulator.wav import load_mono

CALLER_AUDIO_DIR = Path(__file__).resolve().parents[1] / "audio" / "caller"
DEFAULT_LINES = ("hello_saturday", "sales", "transfer_yes")


@dataclass(frozen=True)
class Silence:
    """Stay quiet for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Say:
    """Speak ``path``; at ``at_seconds`` after connect when given."""

    path: Path
    at_seconds: float | None = None


@dataclass(frozen=True)
class WaitReply:
    """Wait for the agent to speak and fall quiet for ``quiet_seconds``."""

    quiet_seconds: float = 0.8
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class BargeIn:
    """Speak ``path`` starting ``after_ms`` after agent audio is first heard."""

    after_ms: float
    path: Path
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class Hangup:
    """Hang up after ``after_seconds``."""

    after_seconds: float = 0.0


Step = Silence | Say | WaitReply | BargeIn | Hangup


def resolve_wav(name: str, base: Path = CALLER_AUDIO_DIR) -> Path:
    """Find a caller WAV by path or by fixture name (``hello_saturday``)."""
    for candidate in (Path(name), base / name, base / f"{name}.wav"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"caller audio {name!r} not found (looked in {base})")


def parse_script(text: str, base: Path = CALLER_AUDIO_DIR) -> list[Step]:
    """Parse the script language above.

    Raises:
        ValueError: An unknown step or a bad argument, with the offending step quoted.
    """
    steps: list[Step] = []
    for raw in text.replace(";", "\n").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = shlex.split(line)
        verb, args = words[0].lower(), words[1:]
        try:
            steps.append(_parse_step(verb, args, base))
        except (IndexError, ValueError) as exc:
            raise ValueError(f"bad script step {line!r}: {exc}") from exc
    return steps


def _parse_step(verb: str, args: list[str], base: Path) -> Step:
    if verb == "silence":
        return Silence(float(args[0]))
    if verb == "say":
        at = float(args[2]) if len(args) >= 3 and args[1] == "at" else None
        return Say(resolve_wav(args[0], base), at)
    if verb == "wait-reply":
        quiet = float(args[0]) if args and args[0] != "timeout" else 0.8
        timeout = float(args[args.index("timeout") + 1]) if "timeout" in args else 20.0
        return WaitReply(quiet, timeout)
    if verb == "barge-in":
        return BargeIn(float(args[0]), resolve_wav(args[1], base))
    if verb == "hangup":
        return Hangup(float(args[0]) if args else 0.0)
    raise ValueError(f"unknown step {verb!r}")


def default_script(wavs: list[str] | None = None, base: Path = CALLER_AUDIO_DIR) -> list[Step]:
    """Listen to the greeting, then say each line after the agent's reply, then hang up."""
    steps: list[Step] = []
    for name in wavs or DEFAULT_LINES:
        steps += [WaitReply(), Say(resolve_wav(name, base))]
    return [*steps, WaitReply(), Hangup(0.5)]


class CallerTrack:
    """Produces the caller's mono s16le frames, one per call, following a script.

    Args:
        steps: The script.
        rate: Call sample rate (``outputSamplingRate``).
        frame_ms: Frame duration.
        loader: Loads a WAV as mono PCM at a rate (soxr-resampled by default).
    """

    def __init__(
        self,
        steps: list[Step],
        rate: int,
        frame_ms: float = 20.0,
        loader: Callable[[Path, int], bytes] = load_mono,
    ) -> None:
        self.steps = steps
        self.rate = rate
        self.frame_ms = frame_ms
        self.frame_bytes = int(rate * frame_ms / 1000) * 2
        self._audio = {s.path: loader(s.path, rate) for s in steps if isinstance(s, Say | BargeIn)}
        self._index = 0
        self._step_started_ms: float | None = None
        self._speaking: tuple[bytes, int, Utterance] | None = None
        self.utterances: list[Utterance] = []
        self.notes: list[str] = []
        self.hangup_requested = False
        #: When a person a supervision reached joined the call (set by the media leg).
        self.person_joined_ms: float | None = None

    @property
    def finished(self) -> bool:
        """All steps done (the caller now only sends silence)."""
        return self._index >= len(self.steps) and self._speaking is None

    def frame(self, index: int, heard: HeardLog) -> bytes:
        """The caller's frame ``index`` (audio captured from ``index × frame_ms``)."""
        now = index * self.frame_ms
        if self._speaking is None:
            self._advance(now, heard)
        if self._speaking is None:
            return bytes(self.frame_bytes)
        audio, offset, utterance = self._speaking
        chunk = audio[offset : offset + self.frame_bytes]
        if offset + self.frame_bytes >= len(audio):
            utterance.end_ms = now + len(chunk) / (self.rate * 2) * 1000
            self._speaking = None
            self._next_step()
        else:
            self._speaking = (audio, offset + self.frame_bytes, utterance)
        return chunk + bytes(self.frame_bytes - len(chunk))

    def _next_step(self) -> None:
        self._index += 1
        self._step_started_ms = None

    def _start_speaking(self, path: Path, now: float, barge_in: bool) -> None:
        utterance = Utterance(path.stem, now, now, barge_in)
        self.utterances.append(utterance)
        self._speaking = (self._audio[path], 0, utterance)

    def _advance(self, now: float, heard: HeardLog) -> None:
        """Run steps that complete without sound until one speaks or has to wait."""
        while self._index < len(self.steps) and self._speaking is None:
            step = self.steps[self._index]
            if self._step_started_ms is None:
                self._step_started_ms = now
            elapsed = now - self._step_started_ms
            if isinstance(step, Silence):
                if elapsed < step.seconds * 1000:
                    return
            elif isinstance(step, Say):
                if step.at_seconds is not None and now < step.at_seconds * 1000:
                    return
                self._start_speaking(step.path, now, barge_in=False)
                return
            elif isinstance(step, WaitReply):
                heard_since = heard.first_audible_after(self._step_started_ms) is not None
                last = heard.last_audio_end_ms
                quiet = last is not None and now - last >= step.quiet_seconds * 1000
                if not (heard_since and quiet):
                    if elapsed < step.timeout_seconds * 1000:
                        return
                    if self.person_joined_ms is None:  # with a person on, nobody else replies
                        self.notes.append(f"no agent reply within {step.timeout_seconds:g} s")
            elif isinstance(step, BargeIn):
                onset = heard.first_audible_after(self._step_started_ms)
                if onset is not None and now >= onset + step.after_ms:
                    self._start_speaking(step.path, now, barge_in=True)
                    return
                if onset is None and elapsed >= step.timeout_seconds * 1000:
                    self.notes.append("no agent audio to barge in on")
                else:
                    return
            elif isinstance(step, Hangup):
                if elapsed < step.after_seconds * 1000:
                    return
                self.hangup_requested = True
            self._next_step()
