"""What every call on a media node shares: node id, settings, table, model factory, clocks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mapokezi.config import Settings
from mapokezi.profiles import Profile
from media_node.audio import DEFAULT_LEAD_MS
from media_node.models import gemini_protocol, openai_protocol
from media_node.models.base import (
    ModelEvent,
    ModelFactory,
    ModelSession,
    ModelUnavailableError,
)
from media_node.models.gemini_session import GeminiLiveSession
from media_node.models.openai_session import OpenAIRealtimeSession
from media_node.pacing_clock import PacingClock

DEFAULT_UPLINK_APPEND_MS = 40
"""Caller audio per ``input_audio_buffer.append``: two 20 ms frames."""


@dataclass(frozen=True)
class CallTimeouts:
    """Bounds that keep a caller out of dead air (seconds)."""

    greeting: float = 8.0
    """Connect → first audio of the greeting."""
    reply: float = 10.0
    """Caller stopped speaking → the model answers (audio or a tool call)."""
    handoff_line: float = 8.0
    """Tool call → the handoff line finished playing."""
    playout: float = 15.0
    """Longest wait for queued audio (a pre-rendered line) to finish playing."""
    time_warning: float = 60.0
    """How long before the profile's length limit the caller is told."""
    close_margin: float = 0.25
    """After the last frame's slot, before closing: the platform's playout buffer drains."""


def openai_factory(url: str, model: str, api_key: str) -> ModelFactory:
    """A factory of OpenAI Realtime sessions for calls (``model`` unless the profile names one)."""

    def build(profile: Profile, instructions: str) -> ModelSession:
        return OpenAIRealtimeSession(
            url=url,
            model=profile.model.name or model,
            api_key=api_key,
            profile=profile,
            instructions=instructions,
        )

    return build


def gemini_factory(url: str, model: str, api_key: str) -> ModelFactory:
    """A factory of Gemini Live sessions for calls (``model`` unless the profile names one)."""

    def build(profile: Profile, instructions: str) -> ModelSession:
        return GeminiLiveSession(
            url=url,
            model=profile.model.name or model,
            api_key=api_key,
            profile=profile,
            instructions=instructions,
            voice=profile.model_voice,
        )

    return build


_RATES = {
    "openai": (openai_protocol.MODEL_RATE, openai_protocol.MODEL_RATE),
    "gemini": (gemini_protocol.INPUT_RATE, gemini_protocol.OUTPUT_RATE),
}


class UnavailableModel(ModelSession):
    """The session of a provider the node cannot reach: `connect` fails with the reason.

    The call then takes its usual path for a model that cannot be opened (apology, front desk)
    and logs the reason.
    """

    def __init__(self, provider: str, reason: str) -> None:
        self.input_rate, self.output_rate = _RATES.get(provider, _RATES["openai"])
        self.reason = reason

    async def connect(self) -> None:
        raise ModelUnavailableError(self.reason)

    async def events(self) -> AsyncIterator[ModelEvent]:  # pragma: no cover - never connected
        return
        yield

    async def send_audio(self, pcm: bytes) -> None:
        """Dropped: the session never opens."""

    async def create_response(self, instructions: str | None = None) -> None:
        """Dropped: the session never opens."""

    async def cancel_response(self) -> None:
        """Dropped: the session never opens."""

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Dropped: the session never opens."""

    async def send_function_output(self, call_id: str, output: dict[str, Any]) -> None:
        """Dropped: the session never opens."""

    async def add_system_message(self, text: str) -> None:
        """Dropped: the session never opens."""

    async def aclose(self) -> None:
        """Nothing to close."""


def provider_factory(providers: Mapping[str, ModelFactory | str]) -> ModelFactory:
    """Picks the adapter from the profile's ``model.provider``.

    Args:
        providers: Per provider, its factory, or the reason it is unavailable (no API key).
    """

    def build(profile: Profile, instructions: str) -> ModelSession:
        provider = profile.model.provider
        chosen = providers.get(provider, f"unknown model provider {provider!r}")
        if isinstance(chosen, str):
            return UnavailableModel(provider, f"{provider} model unavailable: {chosen}")
        return chosen(profile, instructions)

    return build


@dataclass
class NodeContext:
    """Shared by every `CallSession` of a node.

    Attributes:
        node_id: This node's id (recorded on each call's ``media``).
        settings: The shared settings.
        table: boto3 Table resource of the calls table.
        model_factory: Builds a model session for a call.
        clock: Monotonic clock in seconds (replaceable for tests).
        pacer_lead_ms: How far ahead of real time frames are sent (``PACER_LEAD_MS``).
        timeouts: Dead-air bounds.
        uplink_append_ms: Caller audio per append to the model (``UPLINK_APPEND_MS``); 20 sends
            every 20 ms frame on its own. Longer blocks cost less per call (one JSON, base64 and
            WebSocket frame per block) but the model's VAD hears speech start and stop up to
            ``uplink_append_ms - 20`` ms later (20 ms at the default 40), which delays
            barge-in and turn ends by as much.
        frames_per_write: Outbound frames per WebSocket message (``FRAMES_PER_WRITE``, 1 or 2;
            see `media_node.pacing_clock`).
    """

    node_id: str
    settings: Settings
    table: Any
    model_factory: ModelFactory
    clock: Callable[[], float] = time.monotonic
    pacer_lead_ms: float = DEFAULT_LEAD_MS
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    uplink_append_ms: int = DEFAULT_UPLINK_APPEND_MS
    frames_per_write: int = 1
    pacing: PacingClock = field(init=False, repr=False)
    """The node's one pacing clock: every call's outbound frames go out on its ticks."""

    def __post_init__(self) -> None:
        self.pacing = PacingClock(self.clock, self.frames_per_write)

    @classmethod
    def for_providers(
        cls,
        *,
        node_id: str,
        settings: Settings,
        table: Any,
        providers: Mapping[str, ModelFactory | str],
        pacer_lead_ms: float = DEFAULT_LEAD_MS,
        uplink_append_ms: int = DEFAULT_UPLINK_APPEND_MS,
        frames_per_write: int = 1,
    ) -> NodeContext:
        """A context whose calls use the provider their profile chooses (`provider_factory`)."""
        return cls(
            node_id,
            settings,
            table,
            provider_factory(providers),
            pacer_lead_ms=pacer_lead_ms,
            uplink_append_ms=uplink_append_ms,
            frames_per_write=frames_per_write,
        )

    @classmethod
    def for_openai(
        cls,
        *,
        node_id: str,
        settings: Settings,
        table: Any,
        api_key: str,
        pacer_lead_ms: float = DEFAULT_LEAD_MS,
        uplink_append_ms: int = DEFAULT_UPLINK_APPEND_MS,
    ) -> NodeContext:
        """A context whose calls use OpenAI Realtime at ``settings``' URL and model."""
        factory = openai_factory(
            settings.openai_realtime_url, settings.openai_realtime_model, api_key
        )
        return cls(
            node_id,
            settings,
            table,
            factory,
            pacer_lead_ms=pacer_lead_ms,
            uplink_append_ms=uplink_append_ms,
        )
