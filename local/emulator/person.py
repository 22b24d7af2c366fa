"""The person a transfer reaches, as the emulator plays them through the Sautikit double.

Before the call, :func:`configure_person` tells the double what the person behind the
supervisor's phone does (``answer``, ``busy``, ``no-answer``, ``hang-up-first``). After a stream
that ended without a voice re-POST (``--no-restream-post``), :func:`await_person` follows the
double's supervision of the call (``GET /_double/calls/{id}/supervision``): with strategy
``auto`` the Lambda side rescues the caller with one. When the person connects, the caller
hears their recorded voice (``local/audio/person/hello.wav``), appended to ``--out`` after the
silence the caller sat through since the stream ended; with ``hang-up-first`` the person then
leaves before the caller does. :func:`person_on_stream` does the same while the stream is still
open, for a supervision the media node asks for itself: there the person's voice is mixed into
the node's audio on the caller's playout clock (:meth:`MediaLeg.play_person`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from local.emulator.wav import load_mono, read_wav, write_wav
from local.emulator.webhook import CallIdentity, request_json

PERSON_BEHAVIOURS = ("answer", "busy", "no-answer", "hang-up-first")
PERSON_AUDIO = Path(__file__).resolve().parents[1] / "audio" / "person" / "hello.wav"
_DOUBLE_BEHAVIOUR = {
    "answer": "answer",
    "busy": "busy",
    "no-answer": "no_answer",
    "hang-up-first": "answer",
}


@dataclass
class PersonResult:
    """What the caller saw of the transfer after the stream."""

    supervision_id: str | None = None
    states: list[tuple[str, float]] = field(default_factory=list)  # (state, s after stream end)
    connected_after_s: float | None = None
    final_state: str | None = None
    reason: str | None = None
    heard_seconds: float = 0.0
    #: After a stream that ended: the silence the caller sat through before the person spoke.
    silent_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def configure_person(
    api: str, behaviour: str, ring_timeout_seconds: float, answer_after_seconds: float = 1.0
) -> str | None:
    """Set the person's behaviour in the double (an answering person picks up after
    ``answer_after_seconds`` of ringing); returns a warning when that failed."""
    body = {
        "behaviour": _DOUBLE_BEHAVIOUR[behaviour],
        "answer_after": answer_after_seconds,
        "ring_timeout": ring_timeout_seconds,
    }
    status, reply = await request_json("POST", f"{api}/_double/person", body)
    return None if status == 200 else f"could not set the person's behaviour: {status} {reply}"


async def await_person(
    api: str,
    call: CallIdentity,
    *,
    behaviour: str,
    appear_seconds: float,
    ring_seconds: float,
    heard_wav: str | None = None,
    stream_ended_at: float | None = None,
    poll_seconds: float = 0.2,
) -> PersonResult:
    """Follow the supervision of ``call`` until it ends, or none appears in ``appear_seconds``.

    Args:
        api: the double's base URL.
        call: the emulated call.
        behaviour: what the person does (one of ``PERSON_BEHAVIOURS``).
        appear_seconds: how long the caller waits in silence for anything to happen.
        ring_seconds: how long a ringing supervision may take to connect or fail.
        heard_wav: the caller's ``--out`` WAV, to which the person's voice is appended.
        stream_ended_at: ``time.monotonic()`` when the stream ended: the silence from then until
            the person connects goes into ``heard_wav`` before their voice (now when None).
    """
    result = PersonResult()
    started = time.monotonic()
    deadline = started + appear_seconds
    url = f"{api}/_double/calls/{call.call_id}/supervision"
    while time.monotonic() < deadline:
        status, body = await request_json("GET", url)
        supervision = body.get("supervision") if status == 200 and isinstance(body, dict) else None
        if isinstance(supervision, dict):
            state = str(supervision.get("state"))
            if result.supervision_id is None:
                result.supervision_id = supervision.get("supervision_id")
                deadline = time.monotonic() + ring_seconds
            if not result.states or result.states[-1][0] != state:
                result.states.append((state, round(time.monotonic() - started, 2)))
            if state == "connected" and result.connected_after_s is None:
                result.connected_after_s = round(time.monotonic() - started, 2)
                silent = time.monotonic() - (stream_ended_at or started)
                result.silent_seconds = round(silent, 2)
                result.heard_seconds = _hear_person(heard_wav, silent)
                if behaviour == "hang-up-first":
                    await request_json("POST", f"{url}/hangup")
                    continue
                result.final_state = state
                return result
            if state in ("ended", "failed"):
                result.final_state = state
                result.reason = supervision.get("failure_reason")
                return result
        await asyncio.sleep(poll_seconds)
    result.final_state = result.states[-1][0] if result.states else None
    return result


async def person_on_stream(
    api: str,
    call: CallIdentity,
    leg: Any,
    result: PersonResult,
    *,
    behaviour: str,
    poll_seconds: float = 0.2,
) -> None:
    """While the media stream is open, follow a supervision the media node asks for itself
    (``handoff.strategy: supervise``); once the person connects, their recorded voice is mixed
    into what the caller hears (``leg.play_person``), over the receptionist's introduction if it
    is still playing. Fills ``result``; runs until the supervision ends or it is cancelled.
    """
    started = time.monotonic()
    url = f"{api}/_double/calls/{call.call_id}/supervision"
    while True:
        status, body = await request_json("GET", url)
        supervision = body.get("supervision") if status == 200 and isinstance(body, dict) else None
        if isinstance(supervision, dict):
            state = str(supervision.get("state"))
            result.supervision_id = result.supervision_id or supervision.get("supervision_id")
            if not result.states or result.states[-1][0] != state:
                result.states.append((state, round(time.monotonic() - started, 2)))
            result.final_state = state
            if state == "connected" and result.connected_after_s is None:
                result.connected_after_s = round(time.monotonic() - started, 2)
                voice = load_mono(PERSON_AUDIO, leg.playback_rate)
                result.heard_seconds = await leg.play_person(voice)
                if behaviour == "hang-up-first":
                    await request_json("POST", f"{url}/hangup")
            if state in ("ended", "failed"):
                result.reason = supervision.get("failure_reason")
                return
        await asyncio.sleep(poll_seconds)


def _hear_person(heard_wav: str | None, silent_seconds: float = 0.0) -> float:
    """Append ``silent_seconds`` of silence, then the person's voice, to what the caller heard;
    returns the voice's length in seconds."""
    samples, rate = read_wav(PERSON_AUDIO)
    seconds = len(samples) / rate
    if heard_wav and Path(heard_wav).exists():
        heard, heard_rate = read_wav(heard_wav)
        voice = np.frombuffer(load_mono(PERSON_AUDIO, heard_rate), "<i2")
        voice = np.concatenate([np.zeros(round(silent_seconds * heard_rate), np.int16), voice])
        both = np.repeat(voice[:, None], heard.shape[1], axis=1)  # the same in every channel
        write_wav(heard_wav, heard.tobytes() + both.tobytes(), heard_rate, heard.shape[1])
    elif heard_wav:
        silence = np.zeros(round(silent_seconds * rate), np.int16)
        write_wav(heard_wav, silence.tobytes() + samples[:, 0].tobytes(), rate)
    return round(seconds, 2)
