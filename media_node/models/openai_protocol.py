"""Sans-I/O OpenAI Realtime (GA) protocol: session config, client commands, server events.

Feed every text frame from the server to `OpenAIRealtimeProtocol.receive`, which returns
normalised `media_node.models.base` events; send whatever `data_to_send` returns. Only GA shapes
are spoken: ``session.type: "realtime"``, ``audio.input/output.format`` objects,
``response.output_audio.*`` events and no ``OpenAI-Beta`` header (the beta is switched off and
answers with ``beta_api_shape_disabled`` and close 4000).

The protocol waits for ``session.created`` before sending ``session.update`` and reports
`SessionReady` on the first ``session.updated``, so the greeting is requested only once the
voice and formats are in force.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

from mapokezi.profiles import Profile
from media_node.models import pcm_base64
from media_node.models.base import (
    AudioDelta,
    AudioDone,
    CallerTranscript,
    FunctionCall,
    ModelError,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TranscriptDone,
)

log = logging.getLogger(__name__)

MODEL_RATE = 24000
"""The only PCM rate the Realtime API accepts, both ways (48 bytes per ms)."""
PCM_FORMAT = {"type": "audio/pcm", "rate": MODEL_RATE}
TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"

# Errors that end the model's part of the call. Most Realtime errors leave the session usable;
# these mean it is gone or cannot serve us (expiry at 60 minutes, quota, credentials, a protocol
# the server refuses). Any error before the session is configured is fatal too.
FATAL_CODES = frozenset(
    {
        "session_expired",
        "rate_limit_exceeded",
        "insufficient_quota",
        "invalid_api_key",
        "beta_api_shape_disabled",
        "model_not_found",
        "server_error",
    }
)
FATAL_TYPES = frozenset({"server_error", "authentication_error", "rate_limit_error"})


def session_config(
    profile: Profile, instructions: str, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``session`` object of ``session.update`` for a call.

    Noise reduction is ``near_field``: a phone caller speaks into a handset or headset close to
    the microphone, which is what near_field models; ``far_field`` targets room microphones and
    suppresses more aggressively, eating quiet consonants of band-limited telephone speech.

    Args:
        profile: The number's receptionist profile (voice, language, turn detection).
        instructions: The assembled session instructions.
        tools: Provider-neutral tool specs (``name``, ``description``, ``parameters``).
    """
    detection = profile.turn_detection
    turn: dict[str, Any]
    if detection.type == "semantic_vad":
        turn = {"type": "semantic_vad", "eagerness": detection.eagerness}
    else:
        turn = {
            "type": "server_vad",
            "threshold": detection.threshold,
            "prefix_padding_ms": detection.prefix_padding_ms,
            "silence_duration_ms": detection.silence_duration_ms,
        }
    turn.update(create_response=True, interrupt_response=True)
    return {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": instructions,
        "audio": {
            "input": {
                "format": dict(PCM_FORMAT),
                "turn_detection": turn,
                "transcription": {
                    "model": TRANSCRIPTION_MODEL,
                    # The transcriber takes ISO-639-1 codes: "en-KE" becomes "en".
                    "language": profile.language.split("-")[0].lower(),
                },
                "noise_reduction": {"type": "near_field"},
            },
            "output": {"format": dict(PCM_FORMAT), "voice": profile.model_voice},
        },
        "tools": [{"type": "function", **tool} for tool in tools],
        "tool_choice": "auto",
    }


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


# The most frequent command by far: a precomputed envelope around the base64 text rather than
# json.dumps, which would scan the whole string for characters to escape (base64 has none).
_APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = '"}'


def append_audio(pcm: bytes) -> str:
    """``input_audio_buffer.append`` with 24 kHz PCM16."""
    return _APPEND_HEAD + pcm_base64.encode(pcm) + _APPEND_TAIL


def response_create(instructions: str | None = None) -> str:
    """``response.create``; `instructions` replace the session's for this response only."""
    event: dict[str, Any] = {"type": "response.create"}
    if instructions is not None:
        event["response"] = {"instructions": instructions}
    return _dump(event)


def response_cancel() -> str:
    """``response.cancel`` (answered with an error if nothing is in progress)."""
    return _dump({"type": "response.cancel"})


def truncate(item_id: str, audio_end_ms: int) -> str:
    """``conversation.item.truncate`` of an assistant audio item at `audio_end_ms`."""
    return _dump(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": max(0, int(audio_end_ms)),
        }
    )


def function_output(call_id: str, output: dict[str, Any]) -> str:
    """``conversation.item.create`` with a ``function_call_output`` (output JSON-encoded)."""
    item = {"type": "function_call_output", "call_id": call_id, "output": _dump(output)}
    return _dump({"type": "conversation.item.create", "item": item})


def system_message(text: str) -> str:
    """``conversation.item.create`` with a system message."""
    item = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}
    return _dump({"type": "conversation.item.create", "item": item})


class OpenAIRealtimeProtocol:
    """State of one Realtime session's event stream, without I/O.

    Args:
        session: The ``session`` object to send once the server announces the session.
    """

    def __init__(self, session: dict[str, Any]) -> None:
        self._session = session
        self._outgoing: list[str] = []
        self.created = False
        self.ready = False
        self.active_response: str | None = None
        self._calls_seen: set[str] = set()
        # Server event type -> handler; events not listed here carry nothing the call needs.
        self._handlers: dict[str, Callable[[dict[str, Any]], list[ModelEvent]]] = {
            "session.created": self._on_session_created,
            "session.updated": self._on_session_updated,
            "error": self._on_error,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "conversation.item.input_audio_transcription.completed": self._on_caller_transcript,
            "response.created": self._on_response_created,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_transcript_delta,
            "response.output_audio_transcript.done": self._on_transcript_done,
            "response.function_call_arguments.done": self._on_function_call_arguments_done,
            "response.output_item.done": self._on_output_item_done,
            "response.done": self._on_response_done,
        }

    def data_to_send(self) -> list[str]:
        """Frames the protocol wants sent (and forgets them)."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive(self, text: str | bytes) -> list[ModelEvent]:
        """Interprets one server frame.

        Returns:
            The normalised events it carries (often none). Malformed frames are logged and
            skipped: one bad frame must not end a call.
        """
        try:
            event = json.loads(text)
        except (ValueError, TypeError):
            log.warning("model sent a frame that is not JSON: %.200r", text)
            return []
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            log.warning("model sent a frame without a type: %.200r", text)
            return []
        handler = self._handlers.get(event["type"])
        return handler(event) if handler is not None else []

    # --- session -------------------------------------------------------------------------

    def _on_session_created(self, event: dict[str, Any]) -> list[ModelEvent]:
        if not self.created:
            self.created = True
            self._outgoing.append(_dump({"type": "session.update", "session": self._session}))
        return []

    def _on_session_updated(self, event: dict[str, Any]) -> list[ModelEvent]:
        if self.ready:
            return []
        self.ready = True
        return [SessionReady()]

    def _on_error(self, event: dict[str, Any]) -> list[ModelEvent]:
        error = _object(event, "error")
        code = str(error.get("code") or error.get("type") or "unknown")
        message = str(error.get("message") or "")
        fatal = not self.ready or code in FATAL_CODES or str(error.get("type") or "") in FATAL_TYPES
        return [ModelError(code, message, fatal)]

    # --- caller turns --------------------------------------------------------------------

    def _on_speech_started(self, event: dict[str, Any]) -> list[ModelEvent]:
        return [SpeechStarted(event.get("item_id"))]

    def _on_speech_stopped(self, event: dict[str, Any]) -> list[ModelEvent]:
        return [SpeechStopped(event.get("item_id"))]

    def _on_caller_transcript(self, event: dict[str, Any]) -> list[ModelEvent]:
        text = str(event.get("transcript") or "").strip()
        return [CallerTranscript(str(event.get("item_id") or ""), text)] if text else []

    # --- responses -----------------------------------------------------------------------

    def _on_response_created(self, event: dict[str, Any]) -> list[ModelEvent]:
        response_id = str((event.get("response") or {}).get("id") or "")
        self.active_response = response_id
        return [ResponseStarted(response_id)]

    def _on_audio_delta(self, event: dict[str, Any]) -> list[ModelEvent]:
        try:
            pcm = pcm_base64.decode(event.get("delta") or "")
        except (binascii.Error, ValueError):
            log.warning("model sent undecodable audio for item %s", event.get("item_id"))
            return []
        if len(pcm) & 1:
            pcm = pcm[:-1]
        return [AudioDelta(str(event.get("response_id")), str(event.get("item_id")), pcm)]

    def _on_audio_done(self, event: dict[str, Any]) -> list[ModelEvent]:
        return [AudioDone(str(event.get("response_id")), str(event.get("item_id")))]

    def _on_transcript_delta(self, event: dict[str, Any]) -> list[ModelEvent]:
        return [
            TranscriptDelta(
                str(event.get("response_id")),
                str(event.get("item_id")),
                str(event.get("delta") or ""),
            )
        ]

    def _on_transcript_done(self, event: dict[str, Any]) -> list[ModelEvent]:
        return [
            TranscriptDone(
                str(event.get("response_id")),
                str(event.get("item_id")),
                str(event.get("transcript") or ""),
            )
        ]

    def _on_function_call_arguments_done(self, event: dict[str, Any]) -> list[ModelEvent]:
        return self._function_call(str(event.get("response_id")), event)

    def _on_output_item_done(self, event: dict[str, Any]) -> list[ModelEvent]:
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            return self._function_call(str(event.get("response_id")), item)
        return []

    def _function_call(self, response_id: str, data: dict[str, Any]) -> list[ModelEvent]:
        call_id = str(data.get("call_id") or "")
        if not call_id or call_id in self._calls_seen:
            return []
        self._calls_seen.add(call_id)
        try:
            arguments = json.loads(data.get("arguments") or "{}")
        except (ValueError, TypeError):
            log.warning("function call %s has arguments that are not JSON", call_id)
            arguments = {}
        if not isinstance(arguments, dict):
            arguments = {}
        return [FunctionCall(response_id, call_id, str(data.get("name") or ""), arguments)]

    def _on_response_done(self, event: dict[str, Any]) -> list[ModelEvent]:
        response = _object(event, "response")
        response_id = str(response.get("id") or "")
        if self.active_response == response_id or not response_id:
            self.active_response = None
        events: list[ModelEvent] = []
        for item in response.get("output") or []:
            if isinstance(item, dict) and item.get("type") == "function_call":
                events.extend(self._function_call(response_id, item))
        usage = _object(response, "usage")
        events.append(ResponseDone(response_id, str(response.get("status") or ""), usage))
        return events


def _object(event: dict[str, Any], key: str) -> dict[str, Any]:
    """``event[key]`` when it is a JSON object, else an empty one (the server's shapes vary)."""
    value = event.get(key)
    return value if isinstance(value, dict) else {}
