"""Sans-I/O helpers for Sautikit's media WebSocket (subprotocol ``audio.drachtio.org``).

Sautikit's `<Stream>` is very likely FreeSWITCH ``mod_audio_fork`` or a fork of it: one JSON text
frame of metadata on connect, then binary 16-bit little-endian PCM; text frames may appear later.
The metadata schema is undocumented, so parsing is lenient and never raises: whatever is odd is
recorded in `StreamMetadata.problems` for the log. Binary audio is handled by
`media_node.audio.InboundPcm`.

Commands the server may send are JSON text frames. ``killAudio`` (stop current playback) is the
one Sautikit integrations use in the field; it comes from the mod_audio_fork / jambonz heritage
and is not documented by Sautikit. Calls end through the REST hangup or by closing the socket,
never through a command frame.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SUBPROTOCOLS = ("audio.drachtio.org", "audio.jambonz.org")
"""WebSocket subprotocols accepted, in order of preference."""

KILL_AUDIO = '{"type":"killAudio"}'

# Field spellings seen for each value, most specific first. `streamSid` identifies the stream,
# not the call, so it is the last resort for the call id.
_CALL_ID_KEYS = ("callSid", "CallSid", "call_sid", "callId", "CallId", "call_id", "sessionId")
_STREAM_ID_KEYS = ("streamSid", "StreamSid", "stream_sid", "streamId")
_FROM_KEYS = ("from", "From", "callerNumber", "caller")
_TO_KEYS = ("to", "To", "destinationNumber", "called")
_RATE_KEYS = ("sampleRate", "sample_rate", "samplingRate", "outputSamplingRate", "rate")
_CHANNEL_KEYS = ("channels", "numChannels", "num_channels", "channelCount")
_MIX_TYPE_KEYS = ("mixType", "mix_type")
# Where nested copies of those fields may live: mod_audio_fork merges jambonz's `callInfo` and the
# verb's `metadata`; Sautikit puts `headerMetadata` in `headers`; TeXML-style streams use `start`.
_NESTED_KEYS = ("metadata", "callInfo", "headers", "start")
_MIX_TYPE_CHANNELS = {"mono": 1, "mixed": 1, "stereo": 2}
_RATE_RANGE = (4000, 192000)
_MAX_CHANNELS = 8


@dataclass(slots=True)
class StreamMetadata:
    """What the first text frame said about the stream; None where it said nothing usable."""

    call_id: str | None = None
    call_id_field: str | None = None
    """Where the call id was found, e.g. ``callSid`` or ``metadata.callSid``."""
    stream_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    mix_type: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    """The ``headers`` object (Sautikit's ``headerMetadata``), decoded if it came as a string."""
    raw: dict[str, Any] | None = None
    """The decoded JSON object, or None if the frame was not a JSON object."""
    problems: list[str] = field(default_factory=list)
    """Human-readable notes on anything malformed or contradictory."""


@dataclass(slots=True)
class TextFrame:
    """A text frame received after the metadata, classified.

    Attributes:
        kind: ``"json"`` for a JSON object, ``"json-other"`` for other valid JSON, ``"text"`` for
            anything else.
        event: The object's ``type`` or ``event`` string, if any.
        data: The decoded object for ``"json"``, else None.
        text: The frame as received.
    """

    kind: str
    event: str | None
    data: dict[str, Any] | None
    text: str


def parse_metadata(text: str | bytes) -> StreamMetadata:
    """Parses the first text frame leniently; never raises.

    Args:
        text: The frame's payload.

    Returns:
        The metadata found. Malformed input yields an object whose `problems` say what was wrong.
    """
    meta = StreamMetadata()
    decoded, error = _decode_json(text)
    if error:
        meta.problems.append(f"metadata frame is not JSON: {error}")
        return meta
    if not isinstance(decoded, dict):
        meta.problems.append(f"metadata frame is JSON {type(decoded).__name__}, not an object")
        return meta
    meta.raw = decoded
    containers = _containers(decoded, meta)

    meta.call_id, meta.call_id_field = _find_text(containers, _CALL_ID_KEYS)
    meta.stream_id, stream_id_field = _find_text(containers, _STREAM_ID_KEYS)
    if meta.call_id is None:
        meta.call_id, meta.call_id_field = meta.stream_id, stream_id_field
    meta.from_number, _ = _find_text(containers, _FROM_KEYS)
    meta.to_number, _ = _find_text(containers, _TO_KEYS)
    meta.sample_rate = _find_int(containers, _RATE_KEYS, _RATE_RANGE, "sample rate", meta)
    counted = _find_int(containers, _CHANNEL_KEYS, (1, _MAX_CHANNELS), "channel count", meta)
    meta.channels = counted

    mix_type, where = _find_text(containers, _MIX_TYPE_KEYS)
    if mix_type is not None:
        meta.mix_type = mix_type.lower()
        implied = _MIX_TYPE_CHANNELS.get(meta.mix_type)
        if implied is None:
            meta.problems.append(f"unknown {where} {mix_type!r} (expected mono, mixed or stereo)")
        elif counted is None:
            meta.channels = implied
        elif counted != implied:
            meta.problems.append(f"{where} {mix_type!r} contradicts a channel count of {counted}")
    return meta


def check_metadata(meta: StreamMetadata, expected_rate: int, expected_channels: int) -> list[str]:
    """The chipmunk guard: compares the announced audio format with the configured one.

    Args:
        meta: Parsed metadata.
        expected_rate: The rate the stream was configured with (``outputSamplingRate``).
        expected_channels: Channels the bridge decodes (1 for ``inbound_track``).

    Returns:
        Human-readable mismatches; empty when the format agrees or the metadata does not say.
    """
    mismatches = []
    if meta.sample_rate is not None and meta.sample_rate != expected_rate:
        mismatches.append(
            f"stream announces {meta.sample_rate} Hz but {expected_rate} Hz is configured: "
            f"audio would play at {expected_rate / meta.sample_rate:.2f}x speed"
        )
    if meta.channels is not None and meta.channels != expected_channels:
        mismatches.append(
            f"stream announces {meta.channels} channel(s) ({meta.mix_type or 'no mixType'}) "
            f"but {expected_channels} is expected"
        )
    return mismatches


def classify_text_frame(text: str | bytes) -> TextFrame:
    """Classifies a text frame that arrived after the metadata; never raises.

    Args:
        text: The frame's payload.

    Returns:
        Its kind, its ``type``/``event`` name if it is a JSON object, and the decoded object.
    """
    as_text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    decoded, error = _decode_json(text)
    if error:
        return TextFrame("text", None, None, as_text)
    if not isinstance(decoded, dict):
        return TextFrame("json-other", None, None, as_text)
    event = decoded.get("type", decoded.get("event"))
    return TextFrame("json", event if isinstance(event, str) else None, decoded, as_text)


def kill_audio() -> str:
    """The ``killAudio`` command: stop playing buffered audio to the caller (barge-in).

    Heritage: mod_audio_fork/jambonz (``uuid_break``); used against Sautikit in the field.
    """
    return KILL_AUDIO


def _decode_json(text: str | bytes) -> tuple[Any, str | None]:
    """Decodes JSON, returning (value, None) or (None, reason)."""
    try:
        return json.loads(text), None
    except (ValueError, TypeError, RecursionError) as error:
        return None, str(error) or type(error).__name__


def _containers(
    decoded: dict[str, Any], meta: StreamMetadata
) -> list[tuple[str, Mapping[str, Any]]]:
    """The top-level object then its nested objects, with a prefix for provenance."""
    containers: list[tuple[str, Mapping[str, Any]]] = [("", decoded)]
    for key in _NESTED_KEYS:
        value = decoded.get(key)
        if isinstance(value, str) and key == "headers":
            value, error = _decode_json(value) if value.strip() else ({}, None)
            if error or not isinstance(value, dict):
                meta.problems.append(f"headers is a string but not a JSON object: {error}")
                continue
        if isinstance(value, dict):
            containers.append((f"{key}.", value))
            if key == "headers":
                meta.headers = value
        elif value is not None:
            meta.problems.append(f"{key} is {type(value).__name__}, expected an object")
    return containers


def _find_text(
    containers: list[tuple[str, Mapping[str, Any]]], keys: tuple[str, ...]
) -> tuple[str | None, str | None]:
    """First non-empty string or integer under any of `keys`, key priority before nesting."""
    for key in keys:
        for prefix, container in containers:
            value = container.get(key)
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                value = str(value)
            if isinstance(value, str) and value.strip():
                return value.strip(), prefix + key
    return None, None


def _find_int(
    containers: list[tuple[str, Mapping[str, Any]]],
    keys: tuple[str, ...],
    bounds: tuple[int, int],
    label: str,
    meta: StreamMetadata,
) -> int | None:
    """First plausible integer under any of `keys`; implausible values become problems."""
    for key in keys:
        for prefix, container in containers:
            if key not in container:
                continue
            value = container[key]
            number = _as_int(value)
            if number is None or not bounds[0] <= number <= bounds[1]:
                meta.problems.append(f"{prefix}{key} {value!r} is not a plausible {label}")
                continue
            return number
    return None


def _as_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            as_float = float(value.strip())
        except ValueError:
            return None
        return int(as_float) if as_float.is_integer() else None
    return None
