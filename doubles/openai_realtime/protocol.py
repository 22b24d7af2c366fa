"""Server side of one OpenAI Realtime (GA) session, free of I/O.

Feed it client frames (:meth:`RealtimeSessionProtocol.receive_text`) and fired timers;
collect :meth:`~RealtimeSessionProtocol.actions_to_perform`: server events already serialised
as the service sends them (compact JSON, ``type`` then ``event_id`` first), timers to start,
and connection closes or aborts. Time enters only through timers the caller runs and through
audio: VAD and idle timeouts are measured in milliseconds of audio received.

Where the double simplifies: ``semantic_vad`` behaves like ``server_vad``; noise reduction is
accepted and ignored; audio bytes are never kept in items (``conversation.item.retrieved``
has no ``audio``); output ``speed`` does not stretch the audio; runs of consecutive
``input_audio_buffer.append`` events are logged as one summary record. As observed on the
service, a truncate past the generated audio is reported (``error.event_id`` null) and then
applied, clamped to the audio's end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from doubles.openai_realtime.config import (
    ResponseSettings,
    apply_session_update,
    default_session,
    resolve_response_settings,
)
from doubles.openai_realtime.conversation import (
    Conversation,
    Item,
    client_item,
    cut_transcript,
    new_id,
    server_event,
    transcription_events,
)
from doubles.openai_realtime.errors import RealtimeError, missing_parameter
from doubles.openai_realtime.events import (
    AbortConnection,
    Action,
    ClientEvent,
    CloseConnection,
    Outgoing,
    StartTimer,
    Timer,
    Truncate,
    log_client_event,
)
from doubles.openai_realtime.input import (
    APPEND,
    InputAudioBuffer,
    SpeechEdge,
    compact_append,
    decode_audio,
)
from doubles.openai_realtime.response import Pacing, ResponseStream
from doubles.openai_realtime.script import FunctionOutput, Responder, Trigger

__all__ = ["RealtimeSessionProtocol"]


class RealtimeSessionProtocol:
    """State machine of one session.

    Args:
        model: The ``?model=`` the client connected with.
        responder: Supplies transcripts and replies (see :mod:`doubles.openai_realtime.script`).
        pacing: Response delta size and speed; replaceable per session.
        clock: Timestamps for the client event log.
        expires_at: Unix time reported as ``session.expires_at``.
        record_audio: Keep every input audio byte.
    """

    def __init__(
        self,
        *,
        model: str,
        responder: Responder,
        pacing: Pacing,
        clock: Callable[[], float] = time.monotonic,
        expires_at: int | None = None,
        record_audio: bool = False,
    ) -> None:
        self.id = new_id("sess")
        self.config = default_session(self.id, model, expires_at or int(time.time()) + 3600)
        self.responder = responder
        self.pacing = pacing
        self.items = Conversation()
        self.buffer = InputAudioBuffer(record=record_audio)
        self.client_events: list[ClientEvent] = []
        self.server_events: list[dict[str, Any]] = []
        self.truncates: list[Truncate] = []
        self.function_outputs: list[FunctionOutput] = []
        self.responses: list[ResponseStream] = []
        self.active: ResponseStream | None = None
        self.never_answers = False
        self.closing = False
        self._clock = clock
        self._outbox: list[Action] = []
        self._caller_turns = 0
        self._audio_produced = False
        self._last_input_tokens = 0
        self._idle_deadline_ms: float | None = None
        self._failure: tuple[str, str, str] | None = None
        self._configure_input()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_buffer,
            "input_audio_buffer.clear": self._clear_buffer,
            "conversation.item.create": self._create_item,
            "conversation.item.truncate": self._truncate,
            "conversation.item.delete": self._delete_item,
            "conversation.item.retrieve": self._retrieve_item,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # -- Views for responders and observers ------------------------------------------------

    @property
    def caller_turns(self) -> int:
        """Caller audio turns committed so far."""
        return self._caller_turns

    @property
    def conversation(self) -> Sequence[dict[str, Any]]:
        """The conversation items as the API shows them."""
        return self.items.wire()

    @property
    def input_audio_ms(self) -> float:
        """Input audio received this session."""
        return self.buffer.total_ms

    # -- Inputs ------------------------------------------------------------------------------

    def open(self, *, beta_header: bool = False) -> None:
        """Greet a new connection: ``session.created``, or refusal of the retired beta shape."""
        if beta_header:
            error = {
                "type": "invalid_request_error",
                "code": "beta_api_shape_disabled",
                "message": "The Realtime Beta API is no longer supported. "
                "Please use /v1/realtime for the GA API.",
                "param": None,
            }
            self._emit(server_event("error", error=error))
            self._close(CloseConnection(4000, "invalid_request_error.beta_api_shape_disabled"))
            return
        self._emit(server_event("session.created", session=self.config))

    def receive_text(self, text: str) -> None:
        """Handle one client text frame."""
        if self.closing:
            return
        if (compact := compact_append(text)) is not None:
            # Clients stream appends fifty times a second per call: skip the JSON parser.
            audio, data = compact
            log_client_event(self.client_events, {"type": APPEND, "audio": audio}, self._clock())
            self._append_audio(data)
            return
        try:
            event = json.loads(text)
        except ValueError as exc:
            self._error(RealtimeError("invalid_json", f"Invalid JSON: {exc}."), None)
            return
        if not isinstance(event, dict):
            self._error(RealtimeError("invalid_event", "Expected a JSON object."), None)
            return
        log_client_event(self.client_events, event, self._clock())
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        kind = event.get("type")
        try:
            if kind is None:
                raise RealtimeError("invalid_event", "The 'type' field is missing.")
            if not isinstance(kind, str):
                message = "Invalid type for 'type': expected a string."
                raise RealtimeError("invalid_type", message, param="type")
            if kind not in self._handlers:
                supported = ", ".join(f"'{name}'" for name in self._handlers)
                message = f"Invalid value: '{kind}'. Supported values are: {supported}."
                raise RealtimeError("invalid_value", message, param="type")
            self._handlers[kind](event)
        except RealtimeError as error:
            self._error(error, client_event_id)

    def receive_bytes(self, data: bytes) -> None:
        """Handle a binary frame (the API only speaks JSON text frames)."""
        if not self.closing:
            self._error(RealtimeError("invalid_event", "Binary frames are not supported."), None)

    def timer_fired(self, timer: Timer) -> None:
        """Run a step started with :class:`StartTimer`; stale timers are ignored."""
        if self.closing:
            return
        if timer.kind == "transcription":
            self._transcription_done(timer.key)
        elif self.active is not None and self.active.id == timer.key:
            self._advance(self.active)

    def expire(self, minutes: int = 60) -> None:
        """Hit the maximum session duration: ``error`` ``session_expired``, then close 1001."""
        message = f"Your session hit the maximum duration of {minutes} minutes."
        self._error(RealtimeError("session_expired", message), None)
        self._close(CloseConnection(1001, message))

    def drop(self) -> None:
        """Drop the connection abruptly (no close frame)."""
        self._close(AbortConnection())

    def inject_error(self, error_type: str, code: str | None, message: str) -> None:
        """Send an unsolicited ``error`` event (the session stays open)."""
        self._error(RealtimeError(code or "", message, error_type=error_type), None)

    def fail_next_response(self, error_type: str, code: str, message: str) -> None:
        """Make the next response end at once with ``response.done`` ``failed``."""
        self._failure = (error_type, code, message)

    def actions_to_perform(self) -> list[Action]:
        """Drain what the connection must do, in order."""
        actions, self._outbox = self._outbox, []
        return actions

    # -- Client events ---------------------------------------------------------------------

    def _session_update(self, event: dict[str, Any]) -> None:
        if "session" not in event:
            raise missing_parameter("session")
        self.config = apply_session_update(
            self.config, event["session"], voice_locked=self._audio_produced
        )
        self._configure_input()
        self._emit(server_event("session.updated", session=self.config))

    def _append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if audio is None:
            raise missing_parameter("audio")
        self._append_audio(decode_audio(audio))

    def _append_audio(self, data: bytes) -> None:
        for edge in self.buffer.append(data, detect=not self.never_answers):
            self._on_speech(edge)
        if self._idle_deadline_ms is not None:
            self._check_idle_timeout()

    def _commit_buffer(self, event: dict[str, Any]) -> None:
        buffered = self.buffer.buffered_ms
        if buffered < 100:
            raise RealtimeError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms "
                f"of audio, but buffer only has {buffered:.2f}ms of audio.",
            )
        self._announce_commit(*self._commit(self.buffer.total_ms, caller_turn=True, manual=True))

    def _clear_buffer(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self._emit(server_event("input_audio_buffer.cleared"))

    def _create_item(self, event: dict[str, Any]) -> None:
        if "item" not in event:
            raise missing_parameter("item")
        item = client_item(event["item"], self.config["audio"]["input"]["format"]["type"])
        if self.items.get(item.id) is not None:
            message = f"Item with id '{item.id}' already exists."
            raise RealtimeError("invalid_value", message, param="item.id")
        previous_item_id = event.get("previous_item_id")
        if previous_item_id is not None and not isinstance(previous_item_id, str):
            message = "Invalid type for 'previous_item_id': expected a string."
            raise RealtimeError("invalid_type", message, param="previous_item_id")
        if previous_item_id not in (None, "root") and self.items.get(previous_item_id) is None:
            message = f"Previous item with id '{previous_item_id}' not found."
            raise RealtimeError("invalid_value", message, param="previous_item_id")
        previous = self.items.insert_after(item, previous_item_id)
        if item.wire["type"] == "function_call_output":
            output = FunctionOutput(item.id, item.wire["call_id"], item.wire["output"])
            self.function_outputs.append(output)
        self._emit_item(item, previous)

    def _truncate(self, event: dict[str, Any]) -> None:
        for key in ("item_id", "content_index", "audio_end_ms"):
            if key not in event:
                raise missing_parameter(key)
        item_id, index, end_ms = event["item_id"], event["content_index"], event["audio_end_ms"]
        if isinstance(end_ms, bool) or not isinstance(end_ms, int) or end_ms < 0:
            raise RealtimeError("invalid_value", "Invalid 'audio_end_ms'.", param="audio_end_ms")
        item = self.items.get(item_id) if isinstance(item_id, str) else None
        failure = None
        if item is None:
            message = f"Error truncating item: the item with id '{item_id}' does not exist."
            failure = RealtimeError("item_truncate_invalid_item_id", message, param="item_id")
        elif not item.is_assistant_audio:
            message = "Only model output audio messages can be truncated"
            failure = RealtimeError("unsupported_content_type", message)
        elif index != 0:
            message = f"Invalid content_index: {index}."
            failure = RealtimeError("invalid_value", message, param="content_index")
        if failure is not None:
            self.truncates.append(Truncate(item_id, index, end_ms, None, None, failure.code))
            raise failure
        assert item is not None
        available, applied, error_code = int(item.audio_ms), end_ms, None
        if end_ms > available:
            # Observed on the service: the overshoot is reported without the client's event id,
            # and the item is then truncated at the end of its audio anyway.
            message = f"Audio content of {available}ms is already shorter than {end_ms}ms"
            self._error(RealtimeError("invalid_value", message, param="audio_end_ms"), None)
            applied, error_code = available, "invalid_value"
        self.truncates.append(Truncate(item_id, index, end_ms, applied, item.audio_ms, error_code))
        cut_transcript(item, applied)
        self._emit(
            server_event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=index,
                audio_end_ms=applied,
            )
        )

    def _delete_item(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or not self.items.delete(item_id):
            message = f"Error deleting item: the item with id '{item_id}' does not exist."
            raise RealtimeError("item_delete_invalid_item_id", message, param="item_id")
        self._emit(server_event("conversation.item.deleted", item_id=item_id))

    def _retrieve_item(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        item = self.items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            message = f"Error retrieving item: the item with id '{item_id}' does not exist."
            raise RealtimeError("item_retrieve_invalid_item_id", message, param="item_id")
        self._emit(server_event("conversation.item.retrieved", item=item.wire))

    def _response_create(self, event: dict[str, Any]) -> None:
        settings = resolve_response_settings(self.config, event.get("response"))
        if self.never_answers:
            return
        if self.active is not None:
            raise RealtimeError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        instructions = (event.get("response") or {}).get("instructions")
        self._start_response(settings, self._trigger(instructions))

    def _response_cancel(self, event: dict[str, Any]) -> None:
        response_id = event.get("response_id")
        if self.active is None or (response_id and response_id != self.active.id):
            message = "Cancellation failed: no active response found"
            raise RealtimeError("response_cancel_not_active", message)
        self._cancel_active("client_cancelled")

    # -- Turn detection, commits, transcription ----------------------------------------------

    @property
    def _turn_detection(self) -> dict[str, Any]:
        return self.config["audio"]["input"]["turn_detection"] or {}

    def _configure_input(self) -> None:
        audio_input = self.config["audio"]["input"]
        self.buffer.configure(audio_input["format"]["type"], audio_input["turn_detection"])

    def _on_speech(self, edge: SpeechEdge) -> None:
        detection = self._turn_detection
        if edge.kind == "started":
            self._idle_deadline_ms = None
            self._emit(
                server_event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=edge.at_ms,
                    item_id=edge.item_id,
                )
            )
            active = self.active
            if detection.get("interrupt_response") and active and active.in_conversation:
                self._cancel_active("turn_detected")
            return
        self._emit(
            server_event(
                "input_audio_buffer.speech_stopped", audio_end_ms=edge.at_ms, item_id=edge.item_id
            )
        )
        self._announce_commit(*self._commit(edge.at_ms, caller_turn=True))
        if detection.get("create_response") and self.active is None:
            self._start_response(resolve_response_settings(self.config, None), self._trigger(None))

    def _check_idle_timeout(self) -> None:
        detection, deadline = self._turn_detection, self._idle_deadline_ms
        if deadline is None or detection.get("type") != "server_vad" or self.active is not None:
            return
        if self.buffer.total_ms < deadline or self.buffer.speaking:
            return
        self._idle_deadline_ms = None
        item, previous = self._commit(self.buffer.total_ms, caller_turn=False)
        self._emit(
            server_event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=int(deadline - detection["idle_timeout_ms"]),
                audio_end_ms=int(self.buffer.total_ms),
                item_id=item.id,
            )
        )
        self._announce_commit(item, previous)
        self._start_response(resolve_response_settings(self.config, None), Trigger("idle_timeout"))

    def _commit(
        self, end_ms: float, *, caller_turn: bool, manual: bool = False
    ) -> tuple[Item, str | None]:
        """Turn the buffer up to ``end_ms`` into a user item; return it and its predecessor."""
        item_id, audio_ms = self.buffer.take(end_ms, manual=manual)
        turn_index = self._caller_turns if caller_turn else None
        said = self.responder.transcribe(self, turn_index) if turn_index is not None else ""
        self._caller_turns += caller_turn
        wire = {"id": item_id, "type": "message", "status": "completed", "role": "user"}
        wire["content"] = [{"type": "input_audio", "transcript": None}]
        item = Item(wire, audio_ms=audio_ms, turn_index=turn_index, said=said)
        return item, self.items.append(item)

    def _announce_commit(self, item: Item, previous: str | None) -> None:
        self._emit(
            server_event("input_audio_buffer.committed", previous_item_id=previous, item_id=item.id)
        )
        self._emit_item(item, previous)
        if self.config["audio"]["input"]["transcription"] is not None:
            delay = self.pacing.transcription_delay_s
            self._outbox.append(StartTimer(delay, Timer("transcription", item.id)))

    def _transcription_done(self, item_id: str) -> None:
        item = self.items.get(item_id)
        settings = self.config["audio"]["input"]["transcription"]
        if item is not None and settings is not None:
            for event in transcription_events(item, settings.get("model")):
                self._emit(event)

    # -- Responses ---------------------------------------------------------------------------

    def _trigger(self, instructions: str | None) -> Trigger:
        return self.items.trigger(instructions, self.function_outputs, self._caller_turns)

    def _start_response(self, settings: ResponseSettings, trigger: Trigger) -> None:
        if self.never_answers:
            return
        stream = ResponseStream(
            settings=settings,
            reply=self.responder.respond(self, trigger),
            trigger=trigger,
            conversation=self.items,
            pacing=self.pacing,
            context=self.items.context_tokens(settings.instructions, self._last_input_tokens),
            failure=self._failure,
        )
        self._failure = None
        self.responses.append(stream)
        self.active = stream
        for event in stream.start():
            self._emit(event)
        self._advance(stream)

    def _advance(self, stream: ResponseStream) -> None:
        while self.active is stream:
            events, wait = stream.step()
            for event in events:
                self._emit(event)
            if stream.finished:
                self._finish(stream)
            elif wait > 0:
                self._outbox.append(StartTimer(wait, Timer("response", stream.id)))
                return

    def _cancel_active(self, reason: str) -> None:
        stream = self.active
        assert stream is not None
        for event in stream.cancel(reason):
            self._emit(event)
        self._finish(stream)

    def _finish(self, stream: ResponseStream) -> None:
        self.active = None
        self._audio_produced = self._audio_produced or stream.audio_ms > 0
        self._last_input_tokens = stream.usage()["input_tokens"]
        idle_ms = self._turn_detection.get("idle_timeout_ms")
        if idle_ms and stream.status == "completed":
            self._idle_deadline_ms = self.buffer.total_ms + stream.audio_ms + idle_ms

    # -- Output ------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        self._outbox.append(Outgoing(event["type"], text))
        # The log is a snapshot (items change later), with audio summarised by its size.
        if event["type"] == "response.output_audio.delta":
            self.server_events.append({**event, "delta": f"<{len(event['delta']) * 3 // 4} bytes>"})
        else:
            self.server_events.append(json.loads(text))

    def _emit_item(self, item: Item, previous: str | None) -> None:
        for kind in ("conversation.item.added", "conversation.item.done"):
            self._emit(server_event(kind, previous_item_id=previous, item=item.wire))

    def _error(self, error: RealtimeError, client_event_id: str | None) -> None:
        body = {"type": error.error_type, "code": error.code or None, "message": error.message}
        body |= {"param": error.param, "event_id": client_event_id}
        self._emit(server_event("error", error=body))

    def _close(self, action: CloseConnection | AbortConnection) -> None:
        self.closing = True
        self._outbox.append(action)
