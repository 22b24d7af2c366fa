"""A stand-in for Sautikit during one call: webhooks, the media WebSocket, verbs, hangup.

``run_call`` places a whole call (``python -m local.emulator``, ``make call``); ``MediaLeg`` is
the media socket alone, reusable as a load generator against any server speaking Sautikit's
``<Stream>`` protocol. Both follow Sautikit's public documentation; where its pages conflict,
the variant is an option and the default is named in each module.
"""

from __future__ import annotations

from local.emulator.answer import StreamSpec, Verb, VoiceAnswer, parse_voice_answer
from local.emulator.call import CallResult, CallRunner, run_call
from local.emulator.media_leg import DRACHTIO, JAMBONZ, MediaLeg, MediaLegResult
from local.emulator.options import CallOptions
from local.emulator.pacing import JitterConfig, SendSchedule
from local.emulator.playout import PlayoutBuffer, PlayoutConfig
from local.emulator.script import CallerTrack, default_script, parse_script
from local.emulator.timeline import KillEvent, Utterance
from local.emulator.webhook import CallIdentity, sign, voice_fields

__all__ = [
    "DRACHTIO",
    "JAMBONZ",
    "CallIdentity",
    "CallOptions",
    "CallResult",
    "CallRunner",
    "CallerTrack",
    "JitterConfig",
    "KillEvent",
    "MediaLeg",
    "MediaLegResult",
    "PlayoutBuffer",
    "PlayoutConfig",
    "SendSchedule",
    "StreamSpec",
    "Utterance",
    "Verb",
    "VoiceAnswer",
    "default_script",
    "parse_script",
    "parse_voice_answer",
    "run_call",
    "sign",
    "voice_fields",
]
