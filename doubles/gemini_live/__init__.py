"""A strict double of the Gemini Live API (BidiGenerateContent) for tests and the local stack.

Usage::

    script = Script(greeting=Reply("Karibu!"), turns=[Turn("Hello?", Reply("Hello there."))])
    async with GeminiLiveDouble(script, pacing=Pacing(chunk_ms=120, speed=4.0)) as double:
        ...  # connect to double.url with the x-goog-api-key header, send setup
        live = await double.wait_for_connection()
        live.go_away(5)  # then the client resumes on a new connection with its latest handle

Scripts, replies and triggers are the Realtime double's (`doubles.openai_realtime.script`):
the same script drives either provider. See `doubles.gemini_live.session` for the behaviour
and `doubles.gemini_live.wire` for what is accepted.
"""

from doubles.gemini_live.server import LIVE_PATH, GeminiLiveDouble
from doubles.gemini_live.session import LiveConnection, LiveConversation, ModelTurn

__all__ = ["LIVE_PATH", "GeminiLiveDouble", "LiveConnection", "LiveConversation", "ModelTurn"]
