"""Scenarios, the model router and audio helpers of the end-to-end tests (see conftest.py).

One :class:`~local.stack.LocalStack` (moto server, gateway with the real Lambda handlers, CDR
poller, ``python -m media_node``, Sautikit API double) serves every scenario. Its model is a
:class:`~doubles.openai_realtime.RealtimeDouble` run here, on the tests' event loop, so a
scenario can read the double's sessions and inject faults into them. Each scenario dials its
own number, seeded with its own profile; :class:`ScenarioModel` answers every model session with
the script of the business that session's instructions are for. Calls are placed by the real
emulator (:func:`local.emulator.run_call`): webhook, ``<Stream>``, media socket, verbs, hangup,
CDR, and the call record read back through ``GET /calls/{id}``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from doubles.gemini_live import GeminiLiveDouble, LiveConnection
from doubles.openai_realtime import (
    RealtimeDouble,
    RealtimeSession,
    Reply,
    Responder,
    Script,
    SessionState,
    Trigger,
)
from local.emulator import CallOptions, CallResult, JitterConfig, MediaLegResult, run_call
from local.emulator.script import Hangup, Say, Step, WaitReply
from local.stack import EXAMPLE_PROFILE
from mapokezi.profiles import Profile, load_profile_file, parse_profile
from tests.e2e.stack_process import StackInfo, StackProcess

MODEL_API_KEY = "sk-e2e-test-key"
GEMINI_API_KEY = "gemini-e2e-test-key"
WEBHOOK_SECRET = "e2e-webhook-secret"
FRONT_DESK = "+254711000001"
DEPARTMENTS = {"appointments": "+254711000002", "billing": "+254711000003"}
HANDOFF_LINE = "Please hold while I connect you."
FALLBACK_LINE = "Sorry, our assistant is not available right now. Let me put you through."
#: The scripted transcript of the question in ``hello_saturday.wav``, and the answer to it.
QUESTION = "What time do you open on Saturday?"
ANSWER = "We open at nine on Saturday."
#: The take_message arguments of the scenarios where a caller leaves a message.
MESSAGE = {
    "name": "Wanjiru",
    "callback_number": "this number",
    "message": "Please call me back about my invoice.",
    "urgency": "high",
}
#: Heartbeats every 0.5 s; a node silent for 3 s is gone (the no-media-node scenario).
HEARTBEAT_INTERVAL_SECONDS = 0.5
HEARTBEAT_MAX_AGE_SECONDS = 3
FRAME_MS = 20.0
CALL_LIMIT_SECONDS = 60.0


@dataclass(frozen=True)
class InstructedScript(Script):
    """A script that also follows per-response instructions, as a model does: a response whose
    instructions contain one of ``instructed``'s keys (say, the media node's "nobody is free"
    prompt for the scenario's profile, with or without context added) speaks that key's reply."""

    instructed: dict[str, Reply] = field(default_factory=dict)

    def respond(self, state: SessionState, trigger: Trigger) -> Reply:
        """The instructed reply, else the script's."""
        instructions = trigger.instructions or ""
        for prompt, reply in self.instructed.items():
            if prompt in instructions:
                return reply
        return super().respond(state, trigger)


class ScenarioModel:
    """A responder that routes each model session to its scenario's script.

    The media node tells the model whose receptionist it is in the session instructions
    (``You are the receptionist answering the phone for <business>.``); every scenario's profile
    has its own business name, so the session picks that scenario's script.
    """

    def __init__(self) -> None:
        self.scripts: dict[str, Responder] = {}

    def register(self, business_name: str, script: Responder) -> None:
        """Answer sessions for ``business_name`` with ``script``."""
        self.scripts[business_name] = script

    def business_of(self, state: SessionState) -> str | None:
        """The business whose instructions the session carries (None before session.update)."""
        config = state.config
        instructions = str(config.get("instructions") or "")
        if not instructions:  # a Gemini Live setup carries them as its system instruction
            parts = (config.get("systemInstruction") or {}).get("parts") or []
            instructions = " ".join(str(part.get("text") or "") for part in parts)
        for name in self.scripts:
            if f"answering the phone for {name}." in instructions:
                return name
        return None

    def _script(self, state: SessionState) -> Responder:
        name = self.business_of(state)
        if name is None:
            raise LookupError("a model session for a business no scenario registered")
        return self.scripts[name]

    def transcribe(self, state: SessionState, turn_index: int) -> str:
        """What the caller said, from the scenario's script."""
        return self._script(state).transcribe(state, turn_index)

    def respond(self, state: SessionState, trigger: Trigger) -> Reply:
        """The scenario's reply."""
        return self._script(state).respond(state, trigger)


@dataclass
class Scenario:
    """One scenario's number, profile and script."""

    number: str
    business_name: str
    greeting: str
    script: Script
    sample_rate: int = 16000
    track: str = "inbound_track"
    profile_changes: dict[str, Any] = field(default_factory=dict)

    def profile_fields(self) -> dict[str, Any]:
        """The example profile, open 24/7, with this scenario's name, greeting and audio."""
        data = copy.deepcopy(_example_profile())
        data.pop("hours", None)
        data["business_name"] = self.business_name
        data["greeting"] = self.greeting
        data["audio"] = {"sample_rate": self.sample_rate, "track": self.track}
        data["lines"]["fallback"] = FALLBACK_LINE
        data.update(self.profile_changes)
        return data


_EXAMPLE: dict[str, Any] = {}


def _example_profile() -> dict[str, Any]:
    if not _EXAMPLE:
        _EXAMPLE.update(load_profile_file(EXAMPLE_PROFILE))
    return _EXAMPLE


def follows(item: Scenario, prompt: Callable[[Profile], str], reply: Reply) -> None:
    """Make ``item``'s model answer the node's ``prompt`` (a ``media_node.prompts`` function of
    the profile) with ``reply``; ``item.script`` must be an :class:`InstructedScript`."""
    assert isinstance(item.script, InstructedScript)
    item.script.instructed[prompt(parse_profile(item.profile_fields(), item.number))] = reply


def warm_up(item: Scenario) -> None:
    """Synthesise (and cache) the speech of every line ``item``'s model may say."""
    replies = [Reply(item.greeting), item.script.greeting, item.script.fallback]
    replies += [item.script.function_follow_up, item.script.idle_prompt]
    replies += list(getattr(item.script, "instructed", {}).values())
    for turn in item.script.turns:
        replies.append(turn.reply)
        call = turn.reply.function_call
        if call is not None and call.follow_up is not None:
            replies.append(call.follow_up)
    for reply in replies:
        if reply.speaks:
            reply.pcm()


#: Every scenario of the package, by key; each module places calls for its own keys.
SCENARIOS: dict[str, Scenario] = {}


def scenario(key: str, **kwargs: Any) -> Scenario:
    """Declare a scenario (at import time, so the stack seeds its profile)."""
    number = f"+2547009{len(SCENARIOS):05d}"
    SCENARIOS[key] = Scenario(number=number, business_name=f"E2E {key} Clinic", **kwargs)
    return SCENARIOS[key]


logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines


@dataclass
class E2E:
    """The running stack, the model double and its router."""

    stack: StackProcess
    info: StackInfo
    double: RealtimeDouble
    model: ScenarioModel
    gemini: GeminiLiveDouble

    async def gemini_connection_for(
        self,
        scenario: Scenario,
        timeout: float = 10.0,  # noqa: ASYNC109 - every wait here is bounded
    ) -> LiveConnection:
        """The (first) Gemini Live connection of ``scenario``'s call, once set up."""

        def find(double: GeminiLiveDouble) -> LiveConnection | None:
            for connection in double.connections:
                if connection.setup and self.model.business_of(connection.state) == (
                    scenario.business_name
                ):
                    return connection
            return None

        return await self.gemini.wait_for(find, timeout)

    async def session_for(
        self,
        scenario: Scenario,
        timeout: float = 10.0,  # noqa: ASYNC109 - every wait here is bounded
    ) -> RealtimeSession:
        """The (first) model session of ``scenario``'s call, once configured."""

        def find(double: RealtimeDouble) -> RealtimeSession | None:
            for session in double.sessions:
                if self.model.business_of(session) == scenario.business_name:
                    return session
            return None

        return await self.double.wait_for(find, timeout)

    def options(self, scenario: Scenario, steps: list[Step], **changes: Any) -> CallOptions:
        """Call options for ``scenario`` against this stack (signed, jitter-free, bounded)."""
        options = CallOptions(
            voice_url=f"{self.info.gateway_url}/voice",
            to_number=scenario.number,
            webhook_secret=WEBHOOK_SECRET,
            steps=steps,
            jitter=JitterConfig(0.0, 0.0, 1),
            max_call_seconds=CALL_LIMIT_SECONDS,
            sautikit_api_url=self.info.sautikit_url,
            call_record_url=self.info.gateway_url,
            record_wait_seconds=15.0,
        )
        for name, value in changes.items():
            setattr(options, name, value)
        return options

    async def call(self, scenario: Scenario, steps: list[Step], **changes: Any) -> CallResult:
        """Place one call through the whole stack."""
        async with asyncio.timeout(CALL_LIMIT_SECONDS + 30):
            return await run_call(self.options(scenario, steps, **changes))


# --- audio helpers ------------------------------------------------------------------------


def pcm_array(pcm: bytes) -> np.ndarray:
    """s16le bytes as float samples."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def at_rate(pcm_24k: bytes, rate: int) -> np.ndarray:
    """Model audio (24 kHz) as it should reach a caller at ``rate``."""
    samples = np.frombuffer(pcm_24k, dtype="<i2").astype(np.float32) / 32768
    return soxr.resample(samples, 24000, rate, quality="HQ").astype(np.float64) * 32768


def best_match(heard: bytes, expected: np.ndarray) -> tuple[float, float]:
    """Where ``expected`` best lines up inside ``heard`` and how well.

    Returns:
        ``(offset_seconds_in_samples, normalised_correlation)``: the correlation is 1.0 for an
        exact copy; audio at the wrong rate (chipmunk or slowed) or a different line stays low.
    """
    signal = pcm_array(heard)
    n = len(expected)
    if len(signal) < n or n == 0:
        return 0.0, 0.0
    size = 1 << int(np.ceil(np.log2(len(signal) + n)))
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(expected, size)), size)
    corr = corr[: len(signal) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(signal**2)])
    window = energy[n:] - energy[:-n]
    norm = np.sqrt(np.maximum(window, 1e-9) * float(np.sum(expected**2)))
    score = corr / norm
    index = int(np.argmax(score))
    return float(index), float(score[index])


def found_in(heard: bytes, reply: np.ndarray, rate: int, window_ms: float = 200.0) -> float:
    """How well ``reply`` (at ``rate``) shows up in ``heard``: the best score of short windows.

    A few 200 ms windows spread over the reply are each looked for on their own, so a playout
    gap elsewhere (a busy test machine) does not hide the match; audio at the wrong rate or a
    different line matches none of them.
    """
    size = int(window_ms / 1000 * rate)
    starts = np.linspace(0, max(0, len(reply) - size), num=4).astype(int)
    return max(best_match(heard, reply[start : start + size])[1] for start in starts)


def played_ms(media: MediaLegResult) -> float:
    """Milliseconds of agent audio the caller's phone actually played (gaps not counted)."""
    return media.played_bytes / (media.playback_rate * 2) * 1000


def frames_ms(reply_24k: bytes, rate: int) -> float:
    """Length of a reply once the node has framed it for a call at ``rate`` (whole 20 ms)."""
    return np.ceil(len(at_rate(reply_24k, rate)) / (rate * FRAME_MS / 1000)) * FRAME_MS


def rms(pcm: bytes) -> float:
    """Root mean square level of s16le audio (0.0 for digital silence or nothing)."""
    samples = pcm_array(pcm)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def heard_between(result: CallResult, start_ms: float, end_ms: float) -> bytes:
    """What the caller heard between two moments (ms after the media socket opened)."""
    assert result.media is not None
    bytes_per_ms = result.media.playback_rate * 2 / 1000
    start = int(max(0.0, start_ms) * bytes_per_ms) & ~1
    end = int(end_ms * bytes_per_ms) & ~1
    return result.media.heard_pcm[start:end]


def audio_ms(reply_pcm: bytes) -> float:
    """Length of 24 kHz model audio in milliseconds."""
    return len(reply_pcm) / 48


def labels(result: CallResult) -> list[str]:
    """The HTTP requests the emulated platform made, in order."""
    return [exchange.label for exchange in result.exchanges]


def verbs(result: CallResult) -> list[str]:
    """The verbs the emulated platform executed, in order."""
    return [verb["verb"] for verb in result.verbs]


def caller_wav(name: str) -> Path:
    """A committed caller line."""
    return Path(__file__).resolve().parents[2] / "local" / "audio" / "caller" / f"{name}.wav"


def ask_and_leave() -> list[Step]:
    """Hear the greeting, ask the question, hear the answer, hang up."""
    return [
        WaitReply(0.6),
        Say(caller_wav("hello_saturday")),
        WaitReply(0.6, timeout_seconds=10),
        Hangup(),
    ]


def record_of(result: CallResult) -> dict[str, Any]:
    """The call record read back after the call (there must be one)."""
    assert result.call_record is not None, result.warnings
    return result.call_record
