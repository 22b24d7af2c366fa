"""The conversation held by a Realtime double session: items, ids and server events.

Items are kept as their wire dicts (what ``conversation.item.*`` events carry; audio bytes
are never stored, only their duration) plus the bookkeeping the double needs: how much audio
an assistant item generated (truncation limits, usage), which caller turn a user item is, and
which scripted function call produced a ``function_call`` item.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from doubles.openai_realtime.audio import bytes_per_ms
from doubles.openai_realtime.errors import RealtimeError, missing_parameter
from doubles.openai_realtime.script import FunctionCall, FunctionOutput, Trigger

__all__ = [
    "Conversation",
    "Item",
    "TokenCount",
    "client_item",
    "cut_transcript",
    "new_id",
    "obfuscation",
    "server_event",
    "text_tokens",
    "transcription_events",
]

_ALPHABET = string.ascii_letters + string.digits
_TRANSCRIPTION_DELTA = "conversation.item.input_audio_transcription.delta"
_TRANSCRIPTION_COMPLETED = "conversation.item.input_audio_transcription.completed"
_random = random.Random()


def new_id(prefix: str, length: int = 21) -> str:
    """A server-style id such as ``event_C9G5RJeJ2gF77mV7f2B1j``."""
    return f"{prefix}_{random_text(length)}"


def random_text(length: int) -> str:
    """Random letters and digits (ids, and the padding of streamed text deltas)."""
    return "".join(_random.choices(_ALPHABET, k=length))


def obfuscation(delta: str) -> str:
    """Padding the service adds to text deltas so that their sizes leak nothing."""
    return random_text(max(1, 16 - len(delta)))


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event: ``type``, a fresh ``event_id``, then ``fields`` in order."""
    return {"type": kind, "event_id": new_id("event"), **fields}


def text_tokens(text: str) -> int:
    """Estimated text tokens (four characters each)."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class TokenCount:
    """Input context of a response, in tokens (caller audio 10/s, model audio 20/s)."""

    text: int = 0
    audio: int = 0
    cached: int = 0


@dataclass
class Item:
    """One conversation item: its wire form and the double's bookkeeping.

    Attributes:
        wire: The item as events show it (no audio bytes).
        audio_ms: Audio it holds: committed caller audio, or audio the model generated.
        turn_index: For caller audio turns, their 0-based index.
        function_call: For scripted function calls, the call (its ``follow_up`` in particular).
        said: For caller audio turns, what the responder says the caller said.
    """

    wire: dict[str, Any]
    audio_ms: float = 0.0
    turn_index: int | None = None
    function_call: FunctionCall | None = None
    said: str | None = None

    @property
    def id(self) -> str:
        """The item id."""
        return self.wire["id"]

    @property
    def is_assistant_audio(self) -> bool:
        """Whether this is an assistant message with an audio content part."""
        content = self.wire.get("content") or []
        return self.wire.get("role") == "assistant" and any(
            part.get("type") == "output_audio" for part in content
        )


class Conversation:
    """Items in conversation order, with ``previous_item_id`` bookkeeping."""

    def __init__(self) -> None:
        self.id = new_id("conv")
        self._items: list[Item] = []
        self._by_id: dict[str, Item] = {}

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, item_id: str) -> Item | None:
        """The item with ``item_id``, if present."""
        return self._by_id.get(item_id)

    def last(self) -> Item | None:
        """The most recent item."""
        return self._items[-1] if self._items else None

    def append(self, item: Item) -> str | None:
        """Add ``item`` at the end; return the id of the item before it."""
        previous = self._items[-1].id if self._items else None
        self._items.append(item)
        self._by_id[item.id] = item
        return previous

    def insert_after(self, item: Item, previous_item_id: str | None) -> str | None:
        """Insert ``item`` after ``previous_item_id`` (``"root"``: first; ``None``: last).

        Raises:
            KeyError: ``previous_item_id`` is not in the conversation.
        """
        if previous_item_id is None:
            return self.append(item)
        if previous_item_id == "root":
            self._items.insert(0, item)
            self._by_id[item.id] = item
            return None
        anchor = self._by_id[previous_item_id]
        self._items.insert(self._items.index(anchor) + 1, item)
        self._by_id[item.id] = item
        return previous_item_id

    def delete(self, item_id: str) -> bool:
        """Remove an item; return whether it existed."""
        item = self._by_id.pop(item_id, None)
        if item is None:
            return False
        self._items.remove(item)
        return True

    def wire(self) -> list[dict[str, Any]]:
        """The items as the API shows them."""
        return [item.wire for item in self._items]

    def trigger(
        self, instructions: str | None, outputs: Sequence[FunctionOutput], caller_turns: int
    ) -> Trigger:
        """Why a response starting now would start, judged from the latest relevant item."""
        for item in reversed(self._items):
            wire = item.wire
            if wire["type"] == "function_call_output":
                output = next(o for o in outputs if o.item_id == item.id)
                call = self._function_call(wire["call_id"])
                return Trigger(
                    "function_output", instructions, function_call=call, function_output=output
                )
            if wire.get("role") != "user" or not wire.get("content"):
                continue
            part = wire["content"][0]
            if part["type"] == "input_audio" and item.turn_index is not None:
                return Trigger(
                    "user_audio", instructions, turn_index=item.turn_index, said=item.said
                )
            if part["type"] == "input_text":
                kind = "user_text" if caller_turns else "greeting"
                return Trigger(kind, instructions, text=part.get("text"))
        return Trigger("greeting", instructions)

    def context_tokens(self, instructions: str, previous_input_tokens: int) -> TokenCount:
        """Input tokens of a response: instructions plus the conversation.

        Cached tokens grow in steps of 64 over the previous response's input, as the
        service's prompt cache does.
        """
        text, audio = text_tokens(instructions), 0
        for item in self._items:
            wire = item.wire
            text += text_tokens(wire.get("arguments", "") + wire.get("output", ""))
            for part in wire.get("content") or []:
                text += text_tokens(part.get("text") or "")
                if part["type"] == "input_audio":
                    audio += math.ceil(item.audio_ms / 100)
                elif part["type"] == "output_audio":
                    audio += math.ceil(item.audio_ms / 50)
        cached = min(previous_input_tokens // 64 * 64, text + audio)
        return TokenCount(text=text, audio=audio, cached=cached)

    def _function_call(self, call_id: str) -> FunctionCall | None:
        for item in self._items:
            wire = item.wire
            if wire["type"] == "function_call" and wire.get("call_id") == call_id:
                return item.function_call or FunctionCall(wire["name"], wire["arguments"], call_id)
        return None


def transcription_events(item: Item, model: str | None) -> list[dict[str, Any]]:
    """Input transcription result for a committed caller item (recording it on the item).

    ``whisper-1`` reports only ``completed`` with duration usage; streaming models first send
    a ``delta`` and report token usage.
    """
    transcript = item.said or ""
    item.wire["content"] = [{"type": "input_audio", "transcript": transcript}]
    ids: dict[str, Any] = {"item_id": item.id, "content_index": 0}
    if model == "whisper-1":
        usage: dict[str, Any] = {"type": "duration", "seconds": round(item.audio_ms / 1000, 1)}
        return [server_event(_TRANSCRIPTION_COMPLETED, **ids, transcript=transcript, usage=usage)]
    audio, text = math.ceil(item.audio_ms / 100), text_tokens(transcript)
    usage = {"type": "tokens", "total_tokens": audio + text, "input_tokens": audio}
    usage |= {"input_token_details": {"text_tokens": 0, "audio_tokens": audio}}
    usage["output_tokens"] = text
    events = []
    if transcript:
        padding = obfuscation(transcript)
        delta = server_event(_TRANSCRIPTION_DELTA, **ids, delta=transcript, obfuscation=padding)
        events.append(delta)
    events.append(server_event(_TRANSCRIPTION_COMPLETED, **ids, transcript=transcript, usage=usage))
    return events


def client_item(value: Any, input_format: str) -> Item:
    """Validate a ``conversation.item.create`` item and build its wire form."""
    if not isinstance(value, dict):
        raise RealtimeError(
            "invalid_type", "Invalid type for 'item': expected an object.", param="item"
        )
    kind, item_id = value.get("type"), value.get("id") or new_id("item")
    if not isinstance(item_id, str):
        raise RealtimeError(
            "invalid_type", "Invalid type for 'item.id': expected a string.", param="item.id"
        )
    if kind is None:
        raise missing_parameter("item.type")
    if kind == "function_call_output":
        for key in ("call_id", "output"):
            if key not in value:
                raise missing_parameter(f"item.{key}")
        if not isinstance(value["output"], str):
            raise RealtimeError(
                "invalid_type",
                "Invalid type for 'item.output': expected a string, but got "
                f"{'an object' if isinstance(value['output'], dict) else 'a non-string'} instead.",
                param="item.output",
            )
        wire = {
            "id": item_id,
            "type": kind,
            "status": "completed",
            "call_id": value["call_id"],
            "output": value["output"],
        }
        return Item(wire)
    if kind == "function_call":
        for key in ("name", "call_id", "arguments"):
            if not isinstance(value.get(key), str):
                raise missing_parameter(f"item.{key}")
        wire = {
            "id": item_id,
            "type": kind,
            "status": "completed",
            "name": value["name"],
            "call_id": value["call_id"],
            "arguments": value["arguments"],
        }
        return Item(wire)
    if kind != "message":
        raise RealtimeError(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
            "and 'function_call_output'.",
            param="item.type",
        )
    role = value.get("role")
    allowed = {
        "user": ("input_text", "input_audio"),
        "system": ("input_text",),
        "assistant": ("output_text",),
    }
    if role not in allowed:
        raise RealtimeError(
            "invalid_value",
            f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', and 'system'.",
            param="item.role",
        )
    content, audio_ms = [], 0.0
    for index, part in enumerate(value.get("content") or []):
        part_type = part.get("type") if isinstance(part, dict) else None
        if part_type not in allowed[role]:
            raise RealtimeError(
                "invalid_value",
                f"Invalid value: '{part_type}'. Supported values are: "
                + " and ".join(f"'{t}'" for t in allowed[role])
                + ".",
                param=f"item.content[{index}].type",
            )
        if part_type == "input_audio":
            try:
                audio = base64.b64decode(part.get("audio") or "", validate=True)
            except (binascii.Error, ValueError, TypeError):
                message = "Invalid 'audio': expected base64-encoded audio."
                raise RealtimeError(
                    "invalid_value", message, param=f"item.content[{index}].audio"
                ) from None
            audio_ms += len(audio) / bytes_per_ms(input_format)
            content.append({"type": "input_audio", "transcript": part.get("transcript")})
        else:
            content.append({"type": part_type, "text": part.get("text", "")})
    wire = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": role,
        "content": content,
    }
    return Item(wire, audio_ms=audio_ms)


def cut_transcript(item: Item, audio_end_ms: int) -> None:
    """Drop the transcript the listener never heard (proportionally to the audio kept)."""
    part = item.wire["content"][0]
    words = (part.get("transcript") or "").split(" ")
    kept = round(len(words) * audio_end_ms / item.audio_ms) if item.audio_ms else 0
    item.wire["content"] = [{**part, "transcript": " ".join(words[:kept])}]
    item.audio_ms = audio_end_ms
