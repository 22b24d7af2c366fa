"""One model response of the Realtime double, as the GA event stream (sans-I/O).

:class:`ResponseStream` turns a :class:`~doubles.openai_realtime.script.Reply` into the exact
GA sequence, step by step: the caller asks for the next step and is told how long to wait
before the one after (audio is produced faster than real time, like the real service, in
deltas of ``Pacing.chunk_ms``). Cancelling closes whatever part is open with its ``*.done``
events (status ``incomplete``) and ends with ``response.done`` ``cancelled``.

Token usage is an estimate in the service's units: caller audio 10 tokens/s, model audio
20 tokens/s, text one token per four characters; cached input grows in steps of 64 tokens.
"""

from __future__ import annotations

import math
import re
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from doubles.openai_realtime.audio import bytes_per_ms, to_output_format
from doubles.openai_realtime.config import ResponseSettings
from doubles.openai_realtime.conversation import (
    Conversation,
    Item,
    TokenCount,
    new_id,
    obfuscation,
    server_event,
    text_tokens,
)
from doubles.openai_realtime.script import FunctionCall, Reply, Trigger

__all__ = ["Pacing", "ResponseStream"]

Event = dict[str, Any]
Step = tuple[list[Event], float]
_TOKENS = re.compile(r"\s*\S+")
_RATE_LIMIT_TOKENS = 40_000


@dataclass(frozen=True)
class Pacing:
    """How fast responses stream.

    Attributes:
        chunk_ms: Audio per ``response.output_audio.delta``.
        speed: How many times faster than real time deltas are sent (``math.inf``: no waits).
        first_audio_delay_s: Wait between ``response.created`` and the first audio delta.
        transcription_delay_s: Wait between a commit and its input transcription events.
    """

    chunk_ms: int = 120
    speed: float = 4.0
    first_audio_delay_s: float = 0.0
    transcription_delay_s: float = 0.15

    @property
    def interval_s(self) -> float:
        """Wait between two audio deltas."""
        return 0.0 if math.isinf(self.speed) else self.chunk_ms / 1000 / self.speed


@dataclass
class _OpenPart:
    item: Item
    output_index: int
    previous_item_id: str | None
    kind: str  # "audio", "text" or "function_call"
    sent: list[str] = field(default_factory=list)
    call: FunctionCall | None = None


class ResponseStream:
    """The events of one response, produced step by step.

    Args:
        settings: Effective response settings (session plus ``response.create`` overrides).
        reply: What the model says and does.
        trigger: Why the response started (kept for observers).
        conversation: Where output items are added (unless ``conversation`` is ``"none"``).
        pacing: Delta size and speed.
        context: Input tokens of the conversation so far.
        failure: ``(type, code, message)`` to fail the response at once, e.g. a rate limit.
    """

    def __init__(
        self,
        *,
        settings: ResponseSettings,
        reply: Reply,
        trigger: Trigger,
        conversation: Conversation,
        pacing: Pacing,
        context: TokenCount,
        failure: tuple[str, str, str] | None = None,
    ) -> None:
        self.id = new_id("resp")
        self.settings = settings
        self.reply = reply
        self.trigger = trigger
        self.pacing = pacing
        self.status = "in_progress"
        self.status_details: dict[str, Any] | None = None
        self.audio_ms = 0.0
        """Audio generated so far (all items)."""
        self._conversation = conversation if settings.conversation == "auto" else None
        self._context = context
        self._failure = failure
        self._format = settings.output_format["type"]
        self._output: list[Item] = []
        self._open: _OpenPart | None = None
        self._audio_started = False
        self._steps: Iterator[Step] = self._generate()

    @property
    def finished(self) -> bool:
        """Whether ``response.done`` has been produced."""
        return self.status != "in_progress"

    @property
    def in_conversation(self) -> bool:
        """Whether the response writes to the default conversation."""
        return self._conversation is not None

    @property
    def transcript(self) -> str:
        """Speech or text produced so far, across message items."""
        parts = []
        for item in self._output:
            for part in item.wire.get("content", []):
                parts.append(part.get("transcript") or part.get("text") or "")
        if self._open is not None and self._open.kind != "function_call":
            parts.append("".join(self._open.sent))
        return "".join(parts)

    def start(self) -> list[Event]:
        """``response.created`` and ``rate_limits.updated`` (output tokens reserved up front)."""
        remaining = 0 if self._failure else self._remaining_tokens()
        reset_s = round((_RATE_LIMIT_TOKENS - remaining) * 60 / _RATE_LIMIT_TOKENS, 3)
        limit = {"name": "tokens", "limit": _RATE_LIMIT_TOKENS, "remaining": remaining}
        limit["reset_seconds"] = reset_s
        return [
            server_event("response.created", response=self._resource()),
            server_event("rate_limits.updated", rate_limits=[limit]),
        ]

    def step(self) -> Step:
        """The next events and the wait before the following step (meaningless once finished)."""
        if self._failure is not None:
            error_type, code, message = self._failure
            self.status = "failed"
            self.status_details = {
                "type": "failed",
                "error": {"type": error_type, "code": code, "message": message},
            }
            return [self._done_event()], 0.0
        try:
            return next(self._steps)
        except StopIteration:
            self.status = "completed"
            return [self._done_event()], 0.0

    def cancel(self, reason: str) -> list[Event]:
        """Stop now: close the open part (``incomplete``) and report ``cancelled``.

        Args:
            reason: ``"turn_detected"`` or ``"client_cancelled"``.
        """
        self._steps = iter(())
        events = self._close_open("incomplete") if self._open is not None else []
        self.status = "cancelled"
        self.status_details = {"type": "cancelled", "reason": reason}
        return [*events, self._done_event()]

    def usage(self) -> dict[str, Any]:
        """Token usage of the response so far."""
        out_text = sum(
            text_tokens(part.get("transcript") or part.get("text") or "")
            for item in self._output
            for part in item.wire.get("content", [])
        ) + sum(text_tokens(item.wire.get("arguments", "")) for item in self._output)
        out_audio = math.ceil(self.audio_ms / 50)
        ctx = self._context
        cached_text = min(ctx.cached, ctx.text)
        return {
            "total_tokens": ctx.text + ctx.audio + out_text + out_audio,
            "input_tokens": ctx.text + ctx.audio,
            "output_tokens": out_text + out_audio,
            "input_token_details": {
                "text_tokens": ctx.text,
                "audio_tokens": ctx.audio,
                "image_tokens": 0,
                "cached_tokens": ctx.cached,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": ctx.cached - cached_text,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    def _generate(self) -> Iterator[Step]:
        index = 0
        if self.reply.speaks:
            if self.settings.output_modalities == ["text"]:
                yield from self._text_message(index)
            else:
                yield from self._audio_message(index)
            index += 1
        if self.reply.function_call is not None:
            yield from self._function_call(index, self.reply.function_call)

    def _audio_message(self, index: int) -> Iterator[Step]:
        part = self._open_item(index, "audio", _message_wire())
        audio = to_output_format(self.reply.pcm(), self._format)
        chunk = self.pacing.chunk_ms * bytes_per_ms(self._format)
        chunks = [audio[i : i + chunk] for i in range(0, len(audio), chunk)] or [b""]
        tokens = _TOKENS.findall(self.reply.text)
        yield self._opening(part), self._first_audio_wait()
        for number, data in enumerate(chunks):
            # Spread the transcript over the audio deltas, each token sent with (or ahead of)
            # the audio it belongs to, as the service streams them.
            first = -(-number * len(tokens) // len(chunks))
            share = tokens[first : -(-(number + 1) * len(tokens) // len(chunks))]
            events = [self._delta("response.output_audio_transcript.delta", part, t) for t in share]
            part.sent.extend(share)
            ms = len(data) / bytes_per_ms(self._format)
            part.item.audio_ms += ms
            self.audio_ms += ms
            delta = b64encode(data).decode()
            events.append(self._part_ids("response.output_audio.delta", part, delta=delta))
            if number < len(chunks) - 1:
                yield events, self.pacing.interval_s
        yield [*events, *self._close_open("completed")], 0.0

    def _text_message(self, index: int) -> Iterator[Step]:
        part = self._open_item(index, "text", _message_wire())
        yield self._opening(part), self._first_audio_wait()
        tokens = _TOKENS.findall(self.reply.text)
        events = [self._delta("response.output_text.delta", part, token) for token in tokens]
        part.sent.extend(tokens)
        yield [*events, *self._close_open("completed")], 0.0

    def _function_call(self, index: int, call: FunctionCall) -> Iterator[Step]:
        call_id = call.call_id or new_id("call", 16)
        wire = {"id": new_id("item"), "type": "function_call", "status": "in_progress"}
        wire |= {"name": call.name, "call_id": call_id, "arguments": ""}
        part = self._open_item(index, "function_call", wire)
        part.call = call
        yield self._item_added(part), self.pacing.interval_s
        arguments = call.arguments_json
        pieces = [arguments[start : start + 16] for start in range(0, len(arguments), 16)]
        part.sent.extend(pieces)
        kind = "response.function_call_arguments.delta"
        events = [self._call_ids(kind, part, delta=piece) for piece in pieces]
        yield [*events, *self._close_open("completed")], 0.0

    def _open_item(self, index: int, kind: str, wire: Event) -> _OpenPart:
        item = Item(wire=wire)
        previous = self._conversation.append(item) if self._conversation is not None else None
        self._open = _OpenPart(item, index, previous, kind)
        return self._open

    def _opening(self, part: _OpenPart) -> list[Event]:
        return [*self._item_added(part), self._part_event("response.content_part.added", part)]

    def _item_added(self, part: _OpenPart) -> list[Event]:
        return self._item_events("added", part)

    def _item_events(self, stage: str, part: _OpenPart) -> list[Event]:
        """``response.output_item.<stage>``, then ``conversation.item.<stage>`` if stored."""
        item = part.item.wire
        events = [
            server_event(
                f"response.output_item.{stage}",
                response_id=self.id,
                output_index=part.output_index,
                item=item,
            )
        ]
        if self._conversation is not None:
            previous = part.previous_item_id
            events.append(
                server_event(f"conversation.item.{stage}", previous_item_id=previous, item=item)
            )
        return events

    def _close_open(self, status: str) -> list[Event]:
        part = self._open
        assert part is not None
        self._open = None
        text = "".join(part.sent)
        wire = part.item.wire
        wire["status"] = status
        if part.kind == "function_call":
            part.item.function_call = part.call
            wire["arguments"] = text
            kind = "response.function_call_arguments.done"
            events = [self._call_ids(kind, part, name=wire["name"], arguments=text)]
        elif part.kind == "audio":
            wire["content"] = [{"type": "output_audio", "transcript": text}]
            events = [
                self._part_ids("response.output_audio.done", part),
                self._part_ids("response.output_audio_transcript.done", part, transcript=text),
                self._part_event("response.content_part.done", part, text),
            ]
        else:
            wire["content"] = [{"type": "output_text", "text": text}]
            events = [
                self._part_ids("response.output_text.done", part, text=text),
                self._part_event("response.content_part.done", part, text),
            ]
        self._output.append(part.item)
        return [*events, *self._item_events("done", part)]

    def _first_audio_wait(self) -> float:
        if self._audio_started:
            return self.pacing.interval_s
        self._audio_started = True
        return self.pacing.first_audio_delay_s

    def _part_ids(self, kind: str, at: _OpenPart, **fields: Any) -> Event:
        return server_event(
            kind,
            response_id=self.id,
            item_id=at.item.id,
            output_index=at.output_index,
            content_index=0,
            **fields,
        )

    def _call_ids(self, kind: str, at: _OpenPart, **fields: Any) -> Event:
        return server_event(
            kind,
            response_id=self.id,
            item_id=at.item.id,
            output_index=at.output_index,
            call_id=at.item.wire["call_id"],
            **fields,
        )

    def _delta(self, kind: str, part: _OpenPart, token: str) -> Event:
        return self._part_ids(kind, part, delta=token, obfuscation=obfuscation(token))

    def _part_event(self, kind: str, part: _OpenPart, text: str = "") -> Event:
        audio = part.kind == "audio"
        body = {"type": "audio", "transcript": text} if audio else {"type": "text", "text": text}
        return self._part_ids(kind, part, part=body)

    def _remaining_tokens(self) -> int:
        return max(0, _RATE_LIMIT_TOKENS - self._context.text - self._context.audio - 1024)

    def _resource(self) -> Event:
        output_audio = {"format": self.settings.output_format, "voice": self.settings.voice}
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": self.status_details,
            "output": [item.wire for item in self._output],
            "conversation_id": self._conversation.id if self._conversation is not None else None,
            "output_modalities": self.settings.output_modalities,
            "max_output_tokens": self.settings.max_output_tokens,
            "audio": {"output": output_audio},
            "usage": self.usage() if self.finished else None,
            "metadata": self.settings.metadata,
        }

    def _done_event(self) -> Event:
        return server_event("response.done", response=self._resource())


def _message_wire() -> Event:
    wire: Event = {"id": new_id("item"), "type": "message", "status": "in_progress"}
    return wire | {"role": "assistant", "content": []}
