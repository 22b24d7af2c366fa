"""The offline model: a stand-in for OpenAI Realtime and Gemini Live when no API key is set.

It is the doubles the tests use (``doubles/openai_realtime``: GA wire protocol, and
``doubles/gemini_live``: BidiGenerateContent; both with energy-based turn detection and bursty
audio) with one scripted receptionist on top, each on its own port. It speaks
lines pre-rendered with espeak-ng and shipped in ``local/audio/model/`` (nothing is downloaded),
says plainly that it is the offline model, greets, answers the first question with a canned
reply, and transfers the caller to a human (``transfer_to_human``) when they ask again.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from functools import cache
from pathlib import Path
from typing import Any

from doubles.gemini_live import GeminiLiveDouble
from doubles.openai_realtime import (
    FunctionCall,
    RealtimeDouble,
    Reply,
    SessionState,
    Trigger,
)

AUDIO_DIR = Path(__file__).resolve().parent / "audio" / "model"
OFFLINE_API_KEY = "offline-model-key"

#: The spoken lines and their WAV files (24 kHz mono, see local/audio/model/README.md).
LINES = {
    "greeting": "Hello, this is the Mapokezi offline test model. How can I help you?",
    "answer": (
        "I am a test model, so I cannot understand speech. We are open weekdays, eight to "
        "five thirty. To speak to a person, just ask again."
    ),
    "connecting": "Of course. Connecting you now, please hold.",
    "still_there": "Are you still there?",
    "time_warning": "We have about a minute left on this call.",
    "goodbye": "Thank you for calling. Goodbye!",
    "introduction": "I have a caller on the line who would like to speak with you.",
    "nobody_free": "I am sorry, nobody is free right now. Would you like to leave a message?",
    "welcome_back": "Your colleague has left the call. Is there anything else I can help you with?",
}
#: What the media node's supervised-transfer prompts (media_node.prompts) ask for, by a phrase
#: of each, checked in this order (a comeback's instructions quote the earlier conversation).
TRANSFER_CUES = (
    ("has left the call", "welcome_back"),
    ("has just joined the call", "introduction"),
    ("nobody is free", "nobody_free"),
)
CALLER_TRANSCRIPT = "[caller speech: the offline model does not transcribe]"
TRANSFER_REASON = "The caller asked to speak to a person (offline model)."


@cache
def line(name: str) -> Reply:
    """The reply speaking line ``name`` (loaded once)."""
    return Reply.from_wav(AUDIO_DIR / f"{name}.wav", text=LINES[name])


class OfflineReceptionist:
    """The script: greet, answer once, then transfer on the next caller turn."""

    def transcribe(self, state: SessionState, turn_index: int) -> str:
        """The double cannot do speech recognition; say so in the transcript."""
        return CALLER_TRANSCRIPT

    def respond(self, state: SessionState, trigger: Trigger) -> Reply:
        """Pick the reply for why a response is starting."""
        cue = f"{trigger.instructions or ''} {trigger.text or ''}".lower()
        for phrase, name in TRANSFER_CUES:  # a comeback opens a new session, like a greeting
            if phrase in cue:
                return line(name)
        if trigger.kind == "greeting":
            return line("greeting")
        if trigger.kind == "user_audio":
            if (trigger.turn_index or 0) == 0:
                return line("answer")
            transfer = FunctionCall(
                "transfer_to_human",
                {"reason": TRANSFER_REASON},
                follow_up=line("connecting"),
            )
            return Reply(function_call=transfer)
        if trigger.kind == "function_output":
            return line("connecting")
        # System prompts from the media node (idle caller, call-length warning, goodbye).
        if "goodbye" in cue or "end the call" in cue:
            return line("goodbye")
        if "minute" in cue:
            return line("time_warning")
        return line("still_there")


class OfflineModel:
    """Runs the offline model's servers on their own thread and event loop.

    ``start()`` returns once both listen; ``url`` is what ``OPENAI_REALTIME_URL`` should be and
    ``gemini_url`` what ``GEMINI_LIVE_URL`` should be.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8092, gemini_port: int = 8093) -> None:
        self.host = host
        self.port = port
        self.gemini_port = gemini_port
        self.api_key = OFFLINE_API_KEY
        self.double: RealtimeDouble | None = None
        self.gemini: GeminiLiveDouble | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """WebSocket URL of the Realtime endpoint (clients add ``?model=…``)."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    @property
    def gemini_url(self) -> str:
        """WebSocket URL of the Gemini Live endpoint."""
        assert self.gemini is not None, "start() first"
        return self.gemini.url

    def start(self) -> OfflineModel:
        """Start listening (blocks until the socket is bound)."""
        self._thread.start()
        self._run(self._start()).result(timeout=10)
        return self

    def stop(self) -> None:
        """Close every session and the server, then end the thread."""
        if self.double is not None:
            self._run(self.double.close()).result(timeout=10)
            self.double = None
        if self.gemini is not None:
            self._run(self.gemini.close()).result(timeout=10)
            self.gemini = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        self.double = RealtimeDouble(
            OfflineReceptionist(), host=self.host, port=self.port, api_key=self.api_key
        )
        await self.double.start()
        self.gemini = GeminiLiveDouble(
            OfflineReceptionist(), host=self.host, port=self.gemini_port, api_key=self.api_key
        )
        await self.gemini.start()

    def _run(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)
