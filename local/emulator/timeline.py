"""What the caller heard and said, on one clock: milliseconds since the media socket opened.

Sans-I/O. ``HeardLog`` collects audible playout ticks while the call runs; the functions below
turn it, the caller's utterances, the ``killAudio`` events and the audio arrivals into the
numbers a person on the phone would notice: time to first audio, reply latency, how long the
agent kept talking over a barge-in, and stale audio after ``killAudio``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Utterance:
    """One stretch of caller speech."""

    label: str
    start_ms: float
    end_ms: float
    barge_in: bool = False


@dataclass
class KillEvent:
    """A ``killAudio`` command as the caller's side experienced it.

    Attributes:
        at_ms: When the command arrived.
        dropped_bytes: Queued playback audio it discarded.
        last_heard_end_ms: End of the last audible frame already playing when it arrived.
    """

    at_ms: float
    dropped_bytes: int
    last_heard_end_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class HeardLog:
    """Audible runs of the playout, as ``[start_ms, end_ms]`` pairs in time order."""

    def __init__(self) -> None:
        self.runs: list[list[float]] = []

    def add_tick(self, start_ms: float, end_ms: float, audible: bool) -> None:
        """Record one playout tick."""
        if not audible:
            return
        if self.runs and abs(self.runs[-1][1] - start_ms) < 1e-6:
            self.runs[-1][1] = end_ms
        else:
            self.runs.append([start_ms, end_ms])

    @property
    def first_audio_ms(self) -> float | None:
        """When the caller first heard agent audio."""
        return self.runs[0][0] if self.runs else None

    @property
    def last_audio_end_ms(self) -> float | None:
        """End of the most recent audible tick."""
        return self.runs[-1][1] if self.runs else None

    def first_audible_after(self, t_ms: float) -> float | None:
        """Earliest moment at or after ``t_ms`` at which agent audio was playing."""
        for start, end in self.runs:
            if end > t_ms:
                return max(start, t_ms)
        return None


def merge_runs(runs: list[list[float]], gap_ms: float) -> tuple[list[list[float]], int]:
    """Join runs separated by less than ``gap_ms`` (playout stutters) into segments.

    Returns:
        ``(segments, stutters)``: merged ``[start, end]`` segments and how many short gaps
        were bridged (each one a moment of dead air inside a reply).
    """
    segments: list[list[float]] = []
    stutters = 0
    for start, end in runs:
        if segments and start - segments[-1][1] < gap_ms:
            segments[-1][1] = end
            stutters += 1
        else:
            segments.append([start, end])
    return segments, stutters


def reply_latencies(
    utterances: list[Utterance], segments: list[list[float]]
) -> list[dict[str, Any]]:
    """Per utterance, the time from the caller falling silent to the agent's next audio."""
    results = []
    for i, utterance in enumerate(utterances):
        limit = utterances[i + 1].start_ms if i + 1 < len(utterances) else float("inf")
        onset = next(
            (s for s, _ in segments if utterance.end_ms <= s < limit),
            None,
        )
        results.append(
            {
                "utterance": utterance.label,
                "ended_ms": round(utterance.end_ms, 1),
                "reply_onset_ms": None if onset is None else round(onset, 1),
                "latency_ms": None if onset is None else round(onset - utterance.end_ms, 1),
            }
        )
    return results


def barge_in_stats(
    utterances: list[Utterance], segments: list[list[float]], kills: list[KillEvent]
) -> list[dict[str, Any]]:
    """For each barge-in: how long the agent kept playing, and when ``killAudio`` came."""
    results = []
    for utterance in (u for u in utterances if u.barge_in):
        start = utterance.start_ms
        playing = next((seg for seg in segments if seg[0] <= start < seg[1]), None)
        kill = next((k for k in kills if k.at_ms >= start), None)
        results.append(
            {
                "utterance": utterance.label,
                "started_ms": round(start, 1),
                "agent_was_playing": playing is not None,
                "audio_stop_ms": None if playing is None else round(playing[1] - start, 1),
                "kill_audio_ms": None if kill is None else round(kill.at_ms - start, 1),
            }
        )
    return results


def barge_in_kill(kill: KillEvent, utterances: list[Utterance], window_ms: float) -> bool:
    """Whether ``kill`` answers the caller's speech (in progress, or ended within ``window_ms``).

    A ``killAudio`` with the caller silent is the node cutting its own reply to play another
    line (the apology after a model failure, the drain or time-limit line): what follows it is
    that new line, not a leftover.
    """
    return any(u.start_ms <= kill.at_ms < u.end_ms + window_ms for u in utterances)


def stale_audio_after_kills(
    kills: list[KillEvent],
    arrivals: list[tuple[float, int, int]],
    utterances: list[Utterance],
    window_ms: float,
) -> int:
    """Bytes of playback audio that arrived after a barge-in ``killAudio`` but belong to the
    reply it killed.

    A new reply cannot legitimately start before the caller who interrupted has finished
    speaking, so audio arriving after such a kill and before the end of the caller's utterance
    (or within ``window_ms`` of the kill) is left over from the killed reply. Kills that answer
    no caller speech (see :func:`barge_in_kill`) start a new line and are not counted.

    Args:
        kills: The ``killAudio`` events in arrival order.
        arrivals: ``(at_ms, bytes, kills_before)`` per binary frame, where ``kills_before``
            counts the kills received before it (message order, immune to clock ties).
        utterances: The caller's speech.
        window_ms: Grace window after a kill.
    """
    stale = 0
    for index, kill in enumerate(kills):
        speaking = [u for u in utterances if u.start_ms <= kill.at_ms < u.end_ms + window_ms]
        if not speaking:
            continue
        boundary = max([kill.at_ms + window_ms] + [u.end_ms for u in speaking])
        # Only what arrived between this kill and the next one: a later kill has its own verdict.
        stale += sum(n for at, n, before in arrivals if before == index + 1 and at < boundary)
    return stale
