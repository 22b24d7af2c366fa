"""Sans-I/O Gemini Live (BidiGenerateContent) protocol: client messages and server messages.

The module-level builders make the client messages that follow the setup
(`media_node.models.gemini_setup`); `GeminiLiveProtocol.receive` turns one server frame (text
or binary UTF-8 JSON; the service sends binary) into the normalised `media_node.models.base`
events.

Gemini has no response or item ids, so the protocol numbers model turns itself: a turn opens
with its first content (audio, transcript or tool call) and gets ``gemini-turn-N`` as both
response and item id. A tool call ends the turn's response (the model waits for the tool's
answer, and what it says after that is a new response), ``interrupted`` reports barge-in as
`SpeechStarted` (and the next turn's start as that caller's `SpeechStopped`: Gemini reports
the caller's speech only when it interrupts), and ``turnComplete`` ends the response
(``cancelled`` after an interruption).
One server message may carry several fields (Gemini 3.x does that): all are handled, in the
order the conversation makes them happen.
"""

from __future__ import annotations

import binascii
import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

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

INPUT_RATE = 16000
"""The Live API's native input rate (declared in every audio message's mime type)."""
OUTPUT_RATE = 24000
"""Output audio is always 24 kHz PCM16."""
INPUT_MIME_TYPE = f"audio/pcm;rate={INPUT_RATE}"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# Usage fields kept on ResponseDone, renamed to the record's snake_case style.
_USAGE_FIELDS = {
    "promptTokenCount": "input_tokens",
    "cachedContentTokenCount": "cached_tokens",
    "responseTokenCount": "output_tokens",
    "toolUsePromptTokenCount": "tool_use_prompt_tokens",
    "thoughtsTokenCount": "thoughts_tokens",
    "totalTokenCount": "total_tokens",
}


# --- client messages -----------------------------------------------------------------------


def dump(message: dict[str, Any]) -> str:
    """Compact JSON text of a client message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


# Built around the base64 text rather than through json.dumps (base64 needs no escaping).
_AUDIO_HEAD = '{"realtimeInput":{"audio":{"mimeType":"' + INPUT_MIME_TYPE + '","data":"'
_AUDIO_TAIL = '"}}}'


def audio_input(pcm: bytes) -> str:
    """``realtimeInput.audio`` with 16 kHz PCM16."""
    return _AUDIO_HEAD + pcm_base64.encode(pcm) + _AUDIO_TAIL


def user_turn(text: str, *, turn_complete: bool = True) -> str:
    """A ``clientContent`` user turn; ``turn_complete`` makes the model answer it."""
    turn = {"role": "user", "parts": [{"text": text}]}
    return dump({"clientContent": {"turns": [turn], "turnComplete": turn_complete}})


def realtime_text(text: str) -> str:
    """``realtimeInput.text`` (the way to prompt 3.x models after the session started)."""
    return dump({"realtimeInput": {"text": text}})


def tool_response(call_id: str, name: str, result: Any) -> str:
    """``toolResponse`` answering one function call, the result wrapped as ``{"result": …}``."""
    response = {"id": call_id, "name": name, "response": {"result": result}}
    return dump({"toolResponse": {"functionResponses": [response]}})


def parse_duration(text: Any) -> float | None:
    """Seconds of a proto ``Duration`` in JSON (``"50s"``, ``"1.5s"``), or None."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    return float(match.group(1)) if match else None


def usage_record(metadata: dict[str, Any]) -> dict[str, int]:
    """Token counts of ``usageMetadata`` under the record's names (the rest is dropped)."""
    usage: dict[str, int] = {}
    for source, name in _USAGE_FIELDS.items():
        value = metadata.get(source)
        if isinstance(value, int) and not isinstance(value, bool):
            usage[name] = value
    return usage


# --- server messages -----------------------------------------------------------------------


@dataclass
class _Turn:
    """The model turn in progress."""

    id: str
    audio_sent: bool = False
    audio_done: bool = False
    interrupted: bool = False
    transcript: list[str] = field(default_factory=list)


class GeminiLiveProtocol:
    """State of one Gemini Live session's message stream, without I/O.

    One instance lives for a whole call, across resumed connections: `connection_opened`
    starts each new connection, so turn numbering and tool names carry over and the second
    ``setupComplete`` does not report `SessionReady` (the greeting was already asked for).
    """

    def __init__(self) -> None:
        self.ready = False
        """A ``setupComplete`` has arrived on some connection of the session."""
        self.setup_complete = False
        """The current connection has answered its setup."""
        self.resumption_handle: str | None = None
        """The latest handle the service said it can resume from."""
        self.go_away_seconds: float | None = None
        """``goAway.timeLeft`` of the current connection (None until one arrives)."""
        self.usage: dict[str, int] = {}
        """Token counts not yet reported on a `ResponseDone`."""
        self.awaiting_tools: set[str] = set()
        """Function calls the model waits for an answer to."""
        self._handle_current = False
        self._turn: _Turn | None = None
        self._ids = itertools.count(1)
        self._tool_names: dict[str, str] = {}
        self._caller_text: list[str] = []
        self._caller_turns = itertools.count(1)
        self._caller_item: str | None = None
        self._caller_interrupting = False

    @property
    def turn_open(self) -> bool:
        """Whether a model turn has started and not completed."""
        return self._turn is not None

    @property
    def at_rest(self) -> bool:
        """No turn or tool call in progress, and the latest handle covers everything said.

        The service hands out a handle after each turn; resuming from an older one would
        lose the last exchange.
        """
        return self._handle_current and self._turn is None and not self.awaiting_tools

    def tool_answered(self, call_id: str) -> None:
        """The client sent the answer to function call `call_id`."""
        self.awaiting_tools.discard(call_id)

    def connection_opened(self) -> None:
        """A new connection (first or resumed) is about to send its setup."""
        self.setup_complete = False
        self.go_away_seconds = None

    def tool_name(self, call_id: str) -> str | None:
        """The function name of a call the model made (the tool response must repeat it)."""
        return self._tool_names.get(call_id)

    def receive(self, frame: str | bytes) -> list[ModelEvent]:
        """Interprets one server message.

        Returns:
            The normalised events it carries (often none). Malformed messages are logged and
            skipped: one bad message must not end a call.
        """
        try:
            message = json.loads(frame)
        except (ValueError, TypeError):
            log.warning("model sent a message that is not JSON: %.200r", frame)
            return []
        if not isinstance(message, dict):
            log.warning("model sent a message that is not an object: %.200r", frame)
            return []
        events: list[ModelEvent] = []
        if "setupComplete" in message:
            events += self._on_setup_complete()
        update = message.get("sessionResumptionUpdate")
        if isinstance(update, dict):
            self._on_resumption_update(update)
        content = message.get("serverContent")
        metadata = message.get("usageMetadata")
        if isinstance(metadata, dict):
            for name, value in usage_record(metadata).items():
                self.usage[name] = self.usage.get(name, 0) + value
        if isinstance(content, dict):
            events += self._on_server_content(content)
        tool_call = message.get("toolCall")
        if isinstance(tool_call, dict):
            events += self._on_tool_call(tool_call)
        cancellation = message.get("toolCallCancellation")
        if isinstance(cancellation, dict):
            log.info("model cancelled tool calls %s", cancellation.get("ids"))
            ids = cancellation.get("ids")
            self.awaiting_tools.difference_update(ids if isinstance(ids, list) else [])
        if isinstance(content, dict) and content.get("turnComplete"):
            events += self._close_turn()
        go_away = message.get("goAway")
        if isinstance(go_away, dict):
            self.go_away_seconds = parse_duration(go_away.get("timeLeft")) or 0.0
        if not events and not _KNOWN_FIELDS.intersection(message):
            events.append(self._unknown_message(message))
        return events

    def end_connection(self) -> list[ModelEvent]:
        """The connection ended mid-turn: close the turn as ``incomplete``."""
        return self._close_turn(status="incomplete") if self._turn else []

    # --- handlers ------------------------------------------------------------------------

    def _on_setup_complete(self) -> list[ModelEvent]:
        self.setup_complete = True
        if self.ready:
            return []
        self.ready = True
        return [SessionReady()]

    def _on_resumption_update(self, update: dict[str, Any]) -> None:
        handle = update.get("newHandle")
        if update.get("resumable") and isinstance(handle, str) and handle:
            self.resumption_handle = handle
            self._handle_current = True
        else:
            self._handle_current = False

    def _on_server_content(self, content: dict[str, Any]) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        if content.get("interrupted"):
            events += self._on_interrupted()
        heard = content.get("inputTranscription")
        if isinstance(heard, dict) and isinstance(heard.get("text"), str):
            self._caller_text.append(heard["text"])
        turn = content.get("modelTurn")
        parts = turn.get("parts") if isinstance(turn, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                events += self._on_part(part)
        said = content.get("outputTranscription")
        if isinstance(said, dict) and isinstance(said.get("text"), str) and said["text"]:
            current = self._open_turn(events)
            if not current.interrupted:
                current.transcript.append(said["text"])
                events.append(TranscriptDelta(current.id, current.id, said["text"]))
        if content.get("generationComplete") and self._turn is not None:
            events += self._audio_done(self._turn)
        return events

    def _on_part(self, part: dict[str, Any]) -> list[ModelEvent]:
        inline = part.get("inlineData")
        if not isinstance(inline, dict) or part.get("thought"):
            return []
        mime = str(inline.get("mimeType") or "")
        if not mime.startswith("audio/pcm"):
            return []
        try:
            pcm = pcm_base64.decode(inline.get("data") or "")
        except (binascii.Error, ValueError):
            log.warning("model sent undecodable audio")
            return []
        if len(pcm) & 1:
            pcm = pcm[:-1]
        events: list[ModelEvent] = []
        current = self._open_turn(events)
        if pcm and not current.interrupted:
            current.audio_sent = True
            events.append(AudioDelta(current.id, current.id, pcm))
        return events

    def _open_turn(self, events: list[ModelEvent]) -> _Turn:
        if self._turn is None:
            if self._caller_interrupting:
                # The caller who interrupted has finished: the model answers them now.
                self._caller_interrupting = False
                events.append(SpeechStopped(self._caller_item))
            events += self._caller_turn_done()
            turn_id = f"gemini-turn-{next(self._ids)}"
            self._turn = _Turn(turn_id)
            self._handle_current = False
            events.append(ResponseStarted(turn_id))
        return self._turn

    def _on_interrupted(self) -> list[ModelEvent]:
        if self._caller_item is None:
            self._caller_item = f"gemini-caller-{next(self._caller_turns)}"
        self._caller_interrupting = True
        events: list[ModelEvent] = [SpeechStarted(self._caller_item)]
        if self._turn is not None and not self._turn.interrupted:
            self._turn.interrupted = True
            events += self._audio_done(self._turn)
        return events

    def _audio_done(self, turn: _Turn) -> list[ModelEvent]:
        if not turn.audio_sent or turn.audio_done:
            return []
        turn.audio_done = True
        return [AudioDone(turn.id, turn.id)]

    def _on_tool_call(self, tool_call: dict[str, Any]) -> list[ModelEvent]:
        calls = tool_call.get("functionCalls")
        events: list[ModelEvent] = []
        current = self._open_turn(events)
        for call in calls if isinstance(calls, list) else []:
            if not isinstance(call, dict) or not call.get("id"):
                log.warning("model sent a function call without an id: %.200r", call)
                continue
            call_id, name = str(call["id"]), str(call.get("name") or "")
            self._tool_names[call_id] = name
            self.awaiting_tools.add(call_id)
            arguments = call.get("args")
            events.append(
                FunctionCall(
                    current.id, call_id, name, arguments if isinstance(arguments, dict) else {}
                )
            )
        # The model waits for the tool's answer; what it says afterwards is a new response.
        events += self._close_turn()
        return events

    def _close_turn(self, status: str | None = None) -> list[ModelEvent]:
        current, self._turn = self._turn, None
        if current is None:
            return []
        events = self._audio_done(current)
        if not current.interrupted:
            # Late transcription of the words this turn answered (the caller's next words
            # interrupt a turn, so after an interruption they belong to the next exchange).
            events += self._caller_turn_done()
        if current.transcript:
            text = "".join(current.transcript)
            events.append(TranscriptDone(current.id, current.id, text))
        status = status or ("cancelled" if current.interrupted else "completed")
        usage, self.usage = self.usage, {}
        events.append(ResponseDone(current.id, status, usage))
        return events

    def _caller_turn_done(self) -> list[ModelEvent]:
        text = "".join(self._caller_text).strip()
        item = self._caller_item
        self._caller_text, self._caller_item = [], None
        if not text:
            return []
        return [CallerTranscript(item or f"gemini-caller-{next(self._caller_turns)}", text)]

    def _unknown_message(self, message: dict[str, Any]) -> ModelEvent:
        # The SDK treats a message with none of the known fields as an error carrying a code.
        inner = message.get("error")
        error: dict[str, Any] = inner if isinstance(inner, dict) else message
        code = str(error.get("code") or error.get("status") or "unknown")
        text = str(error.get("message") or json.dumps(message)[:200])
        return ModelError(code, text, fatal=not self.ready)


_KNOWN_FIELDS = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "usageMetadata",
        "voiceActivityDetectionSignal",
        "voiceActivity",
    }
)
