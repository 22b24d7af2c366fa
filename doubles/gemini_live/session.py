"""One connection to the Gemini Live double, and the conversation it may resume.

`LiveConnection` checks every client message (`doubles.gemini_live.wire`), runs energy VAD on
the caller's 16 kHz audio, and plays model turns from the double's script: bursty 24 kHz audio
faster than real time with ``outputTranscription`` alongside, ``toolCall`` and a wait for the
``toolResponse``, ``generationComplete`` when generation ends and ``turnComplete`` (with
``usageMetadata``) once the audio would have finished playing, as the service does. Caller
speech during a turn interrupts it (``interrupted``, then ``turnComplete``). Every completed
turn gets a fresh ``sessionResumptionUpdate`` handle; `LiveConversation` is what a handle
resumes. Messages leave through one writer task, as binary frames, in the order produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from doubles.gemini_live import wire
from doubles.loopback import Changes
from doubles.openai_realtime.response import Pacing
from doubles.openai_realtime.script import FunctionCall, FunctionOutput, Reply, Responder, Trigger
from doubles.openai_realtime.vad import EnergyVad

__all__ = ["LiveConnection", "LiveConversation", "ModelTurn"]

_OUTPUT_BYTES_PER_MS = 48  # 24 kHz PCM16
_INPUT_BYTES_PER_MS = 32  # 16 kHz PCM16
_THRESHOLDS = {"START_SENSITIVITY_HIGH": 0.35, "START_SENSITIVITY_LOW": 0.65}


@dataclass
class LiveConversation:
    """What a session remembers across connections (the state a handle resumes)."""

    config: dict[str, Any] = field(default_factory=dict)
    caller_turns: int = 0
    conversation: list[dict[str, Any]] = field(default_factory=list)
    function_outputs: list[FunctionOutput] = field(default_factory=list)


@dataclass
class ModelTurn:
    """One model turn: why it started, what it said, how it ended."""

    trigger: Trigger
    status: str = ""
    """``""`` while running, then ``completed`` or ``interrupted``."""
    audio_ms: float = 0.0
    transcript: str = ""
    function_calls: list[dict[str, Any]] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    """What was spoken, in order (a tool call's follow-up comes after the first)."""
    play_until: float = 0.0
    """Loop time at which the audio sent so far has played out at the client."""
    generated: bool = False
    """All of the turn has been sent (``generationComplete``); it completes at `play_until`."""


class LiveConnection:
    """One client connection: what it sent and got, and faults to inject.

    Args:
        connection: The accepted WebSocket.
        responder: The script (greeting, turns, tool follow-ups).
        pacing: Audio chunk size, speed and first-audio delay.
        resume: Looks a handle up (None when unknown or refused).
        register: Records a handle issued for a conversation.
        api_key: Required key (any non-empty key when None).
        record_audio: Keep every input audio byte.
        on_change: Called whenever something observable changes.
    """

    def __init__(
        self,
        connection: ServerConnection,
        *,
        responder: Responder,
        pacing: Pacing,
        resume: Callable[[str], LiveConversation | None],
        register: Callable[[str, LiveConversation], None],
        api_key: str | None,
        record_audio: bool,
        on_change: Callable[[], None],
    ) -> None:
        self.connection = connection
        self.responder = responder
        self.pacing = pacing
        self.state = LiveConversation()
        self.setup: dict[str, Any] | None = None
        self.resumed_handle: str | None = None
        self.client_messages: list[dict[str, Any]] = []
        """Client messages in order (audio summarised as ``{"realtimeInput": {"audio": n}}``)."""
        self.server_messages: list[dict[str, Any]] = []
        """Server messages in order (audio data summarised by its byte count)."""
        self.turns: list[ModelTurn] = []
        self.tool_responses: list[dict[str, Any]] = []
        self.input_audio_ms = 0.0
        self.input_audio: bytearray | None = bytearray() if record_audio else None
        self.never_answers = False
        """Accept audio but start no turns (a model that never answers)."""
        self.resumable = True
        """Issue resumption handles (False: every update says the session cannot resume)."""
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.violation: wire.Violation | None = None
        self._resume = resume
        self._register = register
        self._api_key = api_key
        self._on_change = on_change
        self._changes = Changes()
        self._queue: asyncio.Queue[bytes | tuple[int, str] | None] = asyncio.Queue()
        self._vad: EnergyVad | None = None
        self._interrupts = True
        self._transcribe_input = False
        self._transcribe_output = False
        self._current: ModelTurn | None = None
        self._task: asyncio.Task[None] | None = None
        self._tool_wait: asyncio.Future[dict[str, Any]] | None = None
        self._pending_calls: dict[str, FunctionCall] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._ids = itertools.count(1)

    # --- observability -------------------------------------------------------------------

    def kinds(self) -> list[str]:
        """The kind of each client message (``setup``, ``realtimeInput``…)."""
        return [next(iter(message)) for message in self.client_messages]

    def sent(self, name: str) -> list[dict[str, Any]]:
        """Server messages carrying ``name`` (``goAway``, ``toolCall``…), or serverContent
        messages carrying it (``interrupted``, ``turnComplete``…)."""
        return [
            m for m in self.server_messages if name in m or name in (m.get("serverContent") or {})
        ]

    async def wait_for(
        self,
        predicate: Callable[[LiveConnection], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - every wait in a test must be bounded
    ) -> Any:
        """Wait until ``predicate(self)`` is truthy; return its value."""
        return await self._changes.wait_for(lambda: predicate(self), timeout, "gemini session")

    # --- faults --------------------------------------------------------------------------

    def go_away(self, seconds: float = 10.0) -> None:
        """Send ``goAway`` and abort the connection ``seconds`` later."""
        self._send({"goAway": {"timeLeft": f"{seconds:g}s"}})
        handle = asyncio.get_running_loop().call_later(seconds, self.drop)
        self._timers.append(handle)

    def drop(self) -> None:
        """End the TCP connection without a close frame."""
        self.connection.transport.abort()

    def close(self, code: int = 1011, reason: str = "Internal error encountered.") -> None:
        """Close the connection with ``code`` after what is queued."""
        self._queue.put_nowait((code, reason))

    # --- I/O -----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changes.notify()
        self._on_change()

    def _send(self, message: dict[str, Any]) -> None:
        self.server_messages.append(_summary(message))
        self._queue.put_nowait(wire.server_json(message))
        self._notify()

    async def _write(self) -> None:
        try:
            while (item := await self._queue.get()) is not None:
                if isinstance(item, tuple):
                    await self.connection.close(*item)
                    return
                await self.connection.send(item)  # bytes: a binary frame, like the service
        except ConnectionClosed:
            return

    async def serve(self) -> None:
        """Runs the connection until it closes."""
        writer = asyncio.create_task(self._write())
        if not self._key_ok():
            self.close(1007, "API key not valid. Please pass a valid API key.")
        try:
            async for data in self.connection:
                try:
                    self._receive(data)
                except wire.Violation as violation:
                    self.violation = violation
                    self._stop_turn()
                    self.close(violation.code, violation.reason)
                    break
        except ConnectionClosed:
            pass
        finally:
            self._stop_turn()
            for timer in self._timers:
                timer.cancel()
            self._queue.put_nowait(None)
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                async with asyncio.timeout(5):
                    await writer
            writer.cancel()
            with contextlib.suppress(BaseException):
                await self.connection.wait_closed()
            self.closed = True
            self.close_code = self.connection.close_code
            self.close_reason = self.connection.close_reason
            self._notify()

    def _key_ok(self) -> bool:
        request = self.connection.request
        if request is None:
            return False
        key = request.headers.get("x-goog-api-key", "")
        if not key:
            key = (parse_qs(urlsplit(request.path).query).get("key") or [""])[0]
        return bool(key) and (self._api_key is None or key == self._api_key)

    # --- client messages -----------------------------------------------------------------

    def _receive(self, data: str | bytes) -> None:
        self._settle()
        if self.setup is not None and (pcm := wire.compact_audio(data)) is not None:
            # The common case, many times a second: what the full parse would accept and read.
            self.client_messages.append({"realtimeInput": {"audio": len(pcm)}})
            self._on_audio(pcm)
            return
        kind, body = wire.parse_client_message(data, setup_done=self.setup is not None)
        if kind == "realtimeInput" and ("audio" in body or "mediaChunks" in body):
            blobs = [body["audio"]] if "audio" in body else body["mediaChunks"]
            pcm = b"".join(wire.decode_audio(blob) for blob in blobs)
            self.client_messages.append({kind: {"audio": len(pcm)}})
            self._on_audio(pcm)
            return
        self.client_messages.append({kind: body})
        if kind == "setup":
            self._on_setup(body)
        elif kind == "clientContent":
            self._on_client_content(body)
        elif kind == "realtimeInput":
            self._on_realtime_input(body)
        elif kind == "toolResponse":
            self._on_tool_response(body)
        self._notify()

    def _on_setup(self, setup: dict[str, Any]) -> None:
        model = setup.get("model", "")
        if not model.startswith("models/gemini-"):
            raise wire.Violation(
                1008, f"{model} is not found for API version v1beta, or is not supported"[:123]
            )
        modalities = setup.get("generationConfig", {}).get("responseModalities", ["AUDIO"])
        if modalities != ["AUDIO"]:
            raise wire.Violation(1007, wire.INVALID_ARGUMENT)
        handle = (setup.get("sessionResumption") or {}).get("handle")
        if handle:
            resumed = self._resume(handle)
            if resumed is None:
                raise wire.Violation(1008, "Requested entity was not found.")
            self.state = resumed
            self.resumed_handle = handle
        self.setup = setup
        self.state.config = setup
        realtime = setup.get("realtimeInputConfig", {})
        detection = realtime.get("automaticActivityDetection", {})
        if not detection.get("disabled"):
            threshold = _THRESHOLDS.get(detection.get("startOfSpeechSensitivity", ""), 0.5)
            self._vad = EnergyVad(
                16000,
                threshold=threshold,
                silence_duration_ms=detection.get("silenceDurationMs", 500),
            )
        self._interrupts = realtime.get("activityHandling") != "NO_INTERRUPTION"
        self._transcribe_input = "inputAudioTranscription" in setup
        self._transcribe_output = "outputAudioTranscription" in setup
        self._send({"setupComplete": {}})
        self._issue_handle()

    def _on_audio(self, pcm: bytes) -> None:
        self.input_audio_ms += len(pcm) / _INPUT_BYTES_PER_MS
        if self.input_audio is not None:
            self.input_audio += pcm
        if self._vad is None or self.never_answers:
            return
        for event in self._vad.feed(np.frombuffer(pcm, dtype="<i2")):
            if event.kind == "start" and self._current is not None and self._interrupts:
                self._interrupt()
            elif event.kind == "stop":
                self._caller_turn_ended()
        self._notify()

    def _on_client_content(self, body: dict[str, Any]) -> None:
        texts = [
            part.get("text", "") for turn in body.get("turns", []) for part in turn.get("parts", [])
        ]
        text = " ".join(t for t in texts if t)
        if text:
            self.state.conversation.append({"role": "user", "text": text})
        if body.get("turnComplete"):
            self._text_turn(text)

    def _on_realtime_input(self, body: dict[str, Any]) -> None:
        if ("activityStart" in body or "activityEnd" in body) and self._vad is not None:
            raise wire.Violation(1007, wire.INVALID_ARGUMENT)  # only with automatic VAD off
        if "text" in body:
            self.state.conversation.append({"role": "user", "text": body["text"]})
            self._text_turn(body["text"])

    def _on_tool_response(self, body: dict[str, Any]) -> None:
        for response in body.get("functionResponses", []):
            call = self._pending_calls.pop(response.get("id", ""), None)
            if call is None:
                raise wire.Violation(1007, wire.INVALID_ARGUMENT)  # no such pending call
            self.tool_responses.append(response)
            output = FunctionOutput(
                f"item-{next(self._ids)}", response["id"], json.dumps(response.get("response"))
            )
            self.state.function_outputs.append(output)
            if self._tool_wait is not None and not self._tool_wait.done():
                self._tool_wait.set_result(response)

    # --- turns ---------------------------------------------------------------------------

    def _caller_turn_ended(self) -> None:
        index = self.state.caller_turns
        self.state.caller_turns += 1
        said = self.responder.transcribe(self.state, index)
        if said:
            self.state.conversation.append({"role": "user", "text": said})
            if self._transcribe_input:
                self._send({"serverContent": {"inputTranscription": {"text": said}}})
        self._start_turn(Trigger("user_audio", turn_index=index, said=said))

    def _text_turn(self, text: str) -> None:
        if self._current is not None:
            self._interrupt()
        if self.state.caller_turns == 0 and not any(t.status for t in self.turns):
            self._start_turn(Trigger("greeting", instructions=text))
        else:
            self._start_turn(Trigger("user_text", instructions=text, text=text))

    def _start_turn(self, trigger: Trigger) -> None:
        if self.never_answers:
            return
        turn = ModelTurn(trigger)
        self.turns.append(turn)
        self._current = turn
        self._send({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}})
        self._task = asyncio.create_task(self._run_turn(turn))

    async def _run_turn(self, turn: ModelTurn) -> None:
        loop = asyncio.get_running_loop()
        reply = self.responder.respond(self.state, turn.trigger)
        await self._speak(turn, reply)
        while reply.function_call is not None:
            call = reply.function_call
            call_id = call.call_id or f"function-call-{secrets.token_hex(6)}"
            arguments = json.loads(call.arguments_json)
            self._pending_calls[call_id] = call
            turn.function_calls.append({"id": call_id, "name": call.name, "args": arguments})
            self._tool_wait = loop.create_future()
            self._send(
                {
                    "toolCall": {
                        "functionCalls": [{"id": call_id, "name": call.name, "args": arguments}]
                    }
                }
            )
            await self._tool_wait
            output = self.state.function_outputs[-1]
            reply = self.responder.respond(
                self.state, Trigger("function_output", function_call=call, function_output=output)
            )
            await self._speak(turn, reply)
        turn.generated = True
        self._send({"serverContent": {"generationComplete": True}})
        # Like the service, the turn completes once its audio would have played out.
        await asyncio.sleep(max(0.0, turn.play_until - loop.time()))
        self._finish(turn, "completed")

    def _settle(self) -> None:
        """Complete the current turn now if its audio has played out by now.

        The turn's own timer does this too, but a busy event loop can hand the double a client
        message before that timer's callback runs. By then the service would have completed
        the turn, so the double must not count the caller's speech as interrupting it.
        """
        turn = self._current
        if (
            turn is not None
            and turn.generated
            and asyncio.get_running_loop().time() >= turn.play_until
        ):
            self._stop_turn()
            self._finish(turn, "completed")

    async def _speak(self, turn: ModelTurn, reply: Reply) -> None:
        if not reply.speaks:
            return
        turn.replies.append(reply)
        loop = asyncio.get_running_loop()
        if self.pacing.first_audio_delay_s:
            await asyncio.sleep(self.pacing.first_audio_delay_s)
        pcm = reply.pcm()
        size = max(2, self.pacing.chunk_ms * _OUTPUT_BYTES_PER_MS)
        chunks = [pcm[i : i + size] for i in range(0, len(pcm), size)]
        words = reply.text.split(" ") if reply.text else []
        for index, chunk in enumerate(chunks):
            now = loop.time()
            self._send(wire.audio_message(chunk))
            ms = len(chunk) / _OUTPUT_BYTES_PER_MS
            turn.audio_ms += ms
            turn.play_until = max(turn.play_until, now) + ms / 1000
            # The words of this chunk, spread evenly over the audio.
            start = len(words) * index // len(chunks)
            end = len(words) * (index + 1) // len(chunks)
            piece = " ".join(words[start:end])
            if piece:
                piece = piece if start == 0 else " " + piece
                turn.transcript += piece
                if self._transcribe_output:
                    self._send({"serverContent": {"outputTranscription": {"text": piece}}})
            if self.pacing.interval_s:
                await asyncio.sleep(self.pacing.interval_s)
        if reply.text:
            self.state.conversation.append({"role": "model", "text": reply.text})

    def _interrupt(self) -> None:
        turn = self._current
        if turn is None:
            return
        self._stop_turn()
        if self._pending_calls:
            self._send({"toolCallCancellation": {"ids": list(self._pending_calls)}})
            self._pending_calls.clear()
        self._send({"serverContent": {"interrupted": True}})
        self._finish(turn, "interrupted")

    def _stop_turn(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None

    def _finish(self, turn: ModelTurn, status: str) -> None:
        turn.status = status
        self._current = None
        self._task = None
        prompt = round(self.input_audio_ms / 1000 * 25)
        response = round(turn.audio_ms / 1000 * 25)
        usage = {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt}],
        }
        self._send({"serverContent": {"turnComplete": True}, "usageMetadata": usage})
        self._issue_handle()

    def _issue_handle(self) -> None:
        if self.setup is None or "sessionResumption" not in self.setup:
            return
        if not self.resumable:
            self._send({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}})
            return
        handle = f"handle-{secrets.token_hex(8)}"
        self._register(handle, self.state)
        self._send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("serverContent") or {}
    parts = (content.get("modelTurn") or {}).get("parts")
    if not parts:
        return message
    size = sum(len(p["inlineData"]["data"]) * 3 // 4 for p in parts if "inlineData" in p)
    return {"serverContent": {"modelTurn": {"audioBytes": size}}}
