"""What every call on a media node shares: node id, settings, table, model factory, clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mapokezi.config import Settings
from mapokezi.profiles import Profile
from media_node.audio import DEFAULT_LEAD_MS
from media_node.models.base import ModelFactory, ModelSession
from media_node.models.openai_session import OpenAIRealtimeSession

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
    """A factory of OpenAI Realtime sessions for calls."""

    def build(profile: Profile, instructions: str) -> ModelSession:
        return OpenAIRealtimeSession(
            url=url, model=model, api_key=api_key, profile=profile, instructions=instructions
        )

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
    """

    node_id: str
    settings: Settings
    table: Any
    model_factory: ModelFactory
    clock: Callable[[], float] = time.monotonic
    pacer_lead_ms: float = DEFAULT_LEAD_MS
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    uplink_append_ms: int = DEFAULT_UPLINK_APPEND_MS

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
