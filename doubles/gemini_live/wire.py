"""What the Gemini Live double accepts and sends, without I/O.

`parse_client_message` checks one client message the way the service does and returns it in
lowerCamelCase (the service parses proto3 JSON, so snake_case field names are accepted too), or
raises `Violation` carrying the close code and reason the service would close with: 1007 for an
invalid argument (unknown field, wrong type or enum, a message other than ``setup`` first, an
unsupported audio mime type), 1008 for a model that does not exist. The server message builders
produce the shapes of the API reference.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from doubles.wire_audio import compact_payload, strict_b64decode

__all__ = [
    "INPUT_MIME_TYPE",
    "OUTPUT_MIME_TYPE",
    "Violation",
    "audio_message",
    "camel",
    "compact_audio",
    "decode_audio",
    "parse_client_message",
    "server_json",
]

INPUT_MIME_TYPE = "audio/pcm;rate=16000"
OUTPUT_MIME_TYPE = "audio/pcm;rate=24000"
INVALID_ARGUMENT = "Request contains an invalid argument."

_SNAKE = re.compile(r"_([a-z0-9])")

# A field is either a nested schema (dict), a list marker ("[]", schema) or a check.
Check = Callable[[Any], bool]
Schema = dict[str, Any]


class Violation(Exception):
    """The message would make the service close the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def camel(name: str) -> str:
    """``snake_case`` → ``lowerCamelCase`` (camelCase names are returned unchanged)."""
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def _enum(*names: str) -> Check:
    return lambda value: value in names


def _is(*types: type) -> Check:
    def check(value: Any) -> bool:
        # JSON true/false are not numbers here, even though bool is an int in Python.
        return bool in types if isinstance(value, bool) else isinstance(value, types)

    return check


_TEXT = _is(str)
_BOOL = _is(bool)
_INT = _is(int)
_NUMBER = _is(int, float)
_ANY: Check = lambda value: True  # noqa: E731 - free-form JSON (function arguments, results)


def _list(item: Any) -> tuple[str, Any]:
    return ("[]", item)


_SCHEMA: Schema = {}
_SCHEMA.update(
    {
        "type": _enum(
            "TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"
        ),
        "format": _TEXT,
        "title": _TEXT,
        "description": _TEXT,
        "nullable": _BOOL,
        "enum": _list(_TEXT),
        "maxItems": _is(str, int),
        "minItems": _is(str, int),
        "properties": ("{}", _SCHEMA),
        "propertyOrdering": _list(_TEXT),
        "required": _list(_TEXT),
        "minimum": _NUMBER,
        "maximum": _NUMBER,
        "items": _SCHEMA,
        "anyOf": _list(_SCHEMA),
        "example": _ANY,
        "default": _ANY,
    }
)
_PART = {"text": _TEXT, "inlineData": {"mimeType": _TEXT, "data": _TEXT}, "thought": _BOOL}
_CONTENT = {"role": _enum("user", "model"), "parts": _list(_PART)}
_SENSITIVITY_START = _enum(
    "START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"
)
_SENSITIVITY_END = _enum(
    "END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"
)
_TRANSCRIPTION = {"languageCodes": _list(_TEXT)}
SETUP: Schema = {
    "model": _TEXT,
    "generationConfig": {
        "responseModalities": _list(_enum("TEXT", "AUDIO")),
        "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": _TEXT}},
            "languageCode": _TEXT,
        },
        "temperature": _NUMBER,
        "topP": _NUMBER,
        "topK": _NUMBER,
        "maxOutputTokens": _INT,
        "candidateCount": _INT,
        "presencePenalty": _NUMBER,
        "frequencyPenalty": _NUMBER,
        "seed": _INT,
        "mediaResolution": _TEXT,
        "enableAffectiveDialog": _BOOL,
        "thinkingConfig": {
            "thinkingBudget": _INT,
            "includeThoughts": _BOOL,
            "thinkingLevel": _TEXT,
        },
    },
    "systemInstruction": _CONTENT,
    "tools": _list(
        {
            "functionDeclarations": _list(
                {
                    "name": _TEXT,
                    "description": _TEXT,
                    "parameters": _SCHEMA,
                    "parametersJsonSchema": _ANY,
                    "response": _SCHEMA,
                    "behavior": _enum("UNSPECIFIED", "BLOCKING", "NON_BLOCKING"),
                }
            ),
            "googleSearch": {},
            "codeExecution": {},
        }
    ),
    "realtimeInputConfig": {
        "automaticActivityDetection": {
            "disabled": _BOOL,
            "startOfSpeechSensitivity": _SENSITIVITY_START,
            "endOfSpeechSensitivity": _SENSITIVITY_END,
            "prefixPaddingMs": _INT,
            "silenceDurationMs": _INT,
        },
        "activityHandling": _enum(
            "ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"
        ),
        "turnCoverage": _enum(
            "TURN_COVERAGE_UNSPECIFIED", "TURN_INCLUDES_ONLY_ACTIVITY", "TURN_INCLUDES_ALL_INPUT"
        ),
    },
    "inputAudioTranscription": _TRANSCRIPTION,
    "outputAudioTranscription": _TRANSCRIPTION,
    "sessionResumption": {"handle": _TEXT, "transparent": _BOOL},
    "contextWindowCompression": {
        "slidingWindow": {"targetTokens": _is(str, int)},
        "triggerTokens": _is(str, int),
    },
    "proactivity": {"proactiveAudio": _BOOL},
}
_BLOB = {"mimeType": _TEXT, "data": _TEXT}
CLIENT_MESSAGES: Schema = {
    "setup": SETUP,
    "clientContent": {"turns": _list(_CONTENT), "turnComplete": _BOOL},
    "realtimeInput": {
        "audio": _BLOB,
        "mediaChunks": _list(_BLOB),
        "video": _BLOB,
        "text": _TEXT,
        "audioStreamEnd": _BOOL,
        "activityStart": {},
        "activityEnd": {},
    },
    "toolResponse": {
        "functionResponses": _list(
            {
                "id": _TEXT,
                "name": _TEXT,
                "response": _ANY,
                "willContinue": _BOOL,
                "scheduling": _enum("SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"),
            }
        )
    },
}


def _unknown(name: str, where: str) -> Violation:
    # The wording of Google's proto JSON parser, shortened to fit a close reason (123 bytes).
    return Violation(1007, f"Invalid JSON payload. Unknown name \"{name}\" at '{where}'."[:123])


def _bad_value(where: str) -> Violation:
    return Violation(1007, f"Invalid value at '{where}'."[:123])


def _validate(value: Any, schema: Any, where: str) -> Any:
    """Checks `value` against `schema` and returns it with camelCase keys."""
    if isinstance(schema, tuple):
        kind, inner = schema
        if kind == "[]":
            if not isinstance(value, list):
                raise _bad_value(where)
            return [_validate(item, inner, f"{where}[{i}]") for i, item in enumerate(value)]
        if not isinstance(value, dict):  # "{}": a map of names to schemas
            raise _bad_value(where)
        return {key: _validate(item, inner, f"{where}.{key}") for key, item in value.items()}
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _bad_value(where)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = camel(key)
            if name not in schema:
                raise _unknown(key, where)
            if schema[name] is _ANY:
                out[name] = item
            else:
                out[name] = _validate(item, schema[name], f"{where}.{name}")
        return out
    if not schema(value):
        raise _bad_value(where)
    return value


def parse_client_message(data: str | bytes, *, setup_done: bool) -> tuple[str, dict[str, Any]]:
    """The kind (``setup``, ``realtimeInput``…) and camelCase body of one client message.

    Raises:
        Violation: The message is not JSON, not exactly one known kind, comes before (or,
            for ``setup``, after) the setup, or breaks the schema.
    """
    try:
        message = json.loads(data)
    except ValueError:
        raise Violation(1007, "Invalid JSON payload received.") from None
    if not isinstance(message, dict) or len(message) != 1:
        raise Violation(1007, INVALID_ARGUMENT)
    ((key, body),) = message.items()
    kind = camel(key)
    if kind not in CLIENT_MESSAGES:
        raise _unknown(key, "message")
    if (kind == "setup") == setup_done:
        raise Violation(1007, INVALID_ARGUMENT)
    return kind, _validate(body, CLIENT_MESSAGES[kind], kind)


_COMPACT_AUDIO_HEAD = '{"realtimeInput":{"audio":{"mimeType":"' + INPUT_MIME_TYPE + '","data":"'
_COMPACT_AUDIO_TAIL = '"}}}'


def compact_audio(data: str | bytes) -> bytes | None:
    """The PCM of a message that is exactly a compact 16 kHz ``realtimeInput.audio``, else None.

    Compact means ``{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"…"}}}``
    with no spacing or other field, as clients stream audio many times a second. Valid base64
    holds no quote, backslash or control character, so when the data decodes to whole samples
    the full parser would accept the message and read the same audio; anything else is left to
    `parse_client_message` and `decode_audio`, which also report the errors.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    encoded = compact_payload(text, _COMPACT_AUDIO_HEAD, _COMPACT_AUDIO_TAIL)
    if encoded is None:
        return None
    try:
        pcm = strict_b64decode(encoded)
    except ValueError:
        return None
    return pcm if len(pcm) % 2 == 0 else None


def decode_audio(blob: dict[str, Any]) -> bytes:
    """The PCM of an audio blob, checking its mime type (only 16 kHz PCM is accepted).

    Raises:
        Violation: Another mime type or rate, or data that is not base64 PCM16.
    """
    if blob.get("mimeType") != INPUT_MIME_TYPE:
        raise Violation(1007, f"Unsupported mime type {blob.get('mimeType')!r}."[:123])
    try:
        pcm = base64.b64decode(blob.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        raise Violation(1007, "Invalid value at 'realtime_input.audio.data' (bytes).") from None
    if len(pcm) % 2:
        raise Violation(1007, "Audio data is not whole 16-bit samples.")
    return pcm


def audio_message(pcm: bytes) -> dict[str, Any]:
    """``serverContent.modelTurn`` with one 24 kHz audio part."""
    part = {"inlineData": {"mimeType": OUTPUT_MIME_TYPE, "data": base64.b64encode(pcm).decode()}}
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def server_json(message: dict[str, Any]) -> bytes:
    """A server message as the UTF-8 JSON the service sends in binary frames."""
    return json.dumps(message, separators=(",", ":")).encode()
