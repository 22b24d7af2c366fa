"""The voice webhook's answers as XML, and what each one does (sans I/O).

:mod:`serverless.voice_flow` decides which answer a POST gets; this module builds them, including
the degraded answer given when the call table (or anything else) fails: a caller must always
reach someone, from the profile cached in the function or the configured front desk.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapokezi.profiles import Profile
from serverless.sautikit_xml import Dial, Hangup, Say, Verb, empty_response, render

UNKNOWN_NUMBER_TEXT = "Sorry, this number is not in service. Please check the number and try again."
UNKNOWN_NUMBER_LANGUAGE = "en-KE"
DIAL_FAILED_TEXT = "Sorry, nobody is available to take your call right now. Please try again later."
#: Spoken before dialling the configured front desk when no profile is at hand.
DEGRADED_TEXT = "Sorry, please hold while we connect you to our front desk."
DEGRADED_NO_DESK_TEXT = "Sorry, we cannot take your call right now. Please call again shortly."

# Outcomes (what the answer does); the handler turns them into metrics.
STREAM = "stream"
EMPTY = "empty"
FALLBACK = "fallback"
AFTER_HOURS = "after_hours"
TRANSFER = "transfer"
HANGUP = "hangup"
DIAL_FAILED = "dial_failed"
UNKNOWN_NUMBER = "unknown_number"
UNKNOWN_CALL = "unknown_call"

# Fallback reasons (a metric dimension: keep this set small and fixed).
NO_MEDIA_NODE = "no_media_node"
STREAM_FAILED = "stream_error"
STREAM_STOPPED = "stream_stopped"
STREAM_LOST = "stream_lost"
NOT_CONFIGURED = "not_configured"
DEPENDENCY_FAILED = "dependency_failed"

#: First-answer kinds stored on the call record (``answer``), read by mapokezi.outcomes.
FIRST_ANSWER_KINDS = (STREAM, FALLBACK, AFTER_HOURS, UNKNOWN_NUMBER)


@dataclass(frozen=True)
class VoiceAnswer:
    """The XML to return and what it does."""

    xml: str
    outcome: str
    reason: str | None = None
    call_created: bool = False
    handoff_stranded: bool = False


def say(profile: Profile, text: str) -> Say:
    """``<Say>`` in the profile's voice and language."""
    return Say(text, voice=profile.say.voice, language=profile.say.language)


def dial(profile: Profile, number: str) -> Dial:
    """``<Dial>`` with the profile's caller id and ring timeout."""
    return Dial(
        number,
        caller_id=profile.caller_id or profile.number,
        timeout_seconds=profile.dial_timeout_seconds,
    )


def fallback_verbs(profile: Profile) -> list[Verb]:
    """Speak the fallback line and dial the front desk."""
    return [say(profile, profile.lines.fallback), dial(profile, profile.front_desk)]


def after_hours_verbs(profile: Profile) -> list[Verb]:
    """Speak the after-hours line, then dial the after-hours number or hang up."""
    last: Verb = (
        dial(profile, profile.after_hours_number) if profile.after_hours_number else Hangup()
    )
    return [say(profile, profile.lines.after_hours), last]


def unknown_number_xml() -> str:
    """The polite answer for a dialled number with no profile."""
    return render([Say(UNKNOWN_NUMBER_TEXT, language=UNKNOWN_NUMBER_LANGUAGE), Hangup()])


def fallback(profile: Profile, reason: str) -> VoiceAnswer:
    """The profile's fallback line and its front desk."""
    return VoiceAnswer(render(fallback_verbs(profile)), FALLBACK, reason)


def front_desk_answer(
    profile: Profile | None, front_desk: str | None, reason: str = DEPENDENCY_FAILED
) -> VoiceAnswer:
    """Reach a person with what is known without the table.

    The cached profile's fallback line and front desk when there is one, else a generic line
    and the configured front desk, else (nothing configured) an apology and a hangup, which at
    least never leaves the caller in silence.
    """
    if profile is not None:
        return fallback(profile, reason)
    if front_desk:
        verbs: list[Verb] = [Say(DEGRADED_TEXT, language="en-KE"), Dial(front_desk)]
        return VoiceAnswer(render(verbs), FALLBACK, reason)
    verbs = [Say(DEGRADED_NO_DESK_TEXT, language="en-KE"), Hangup()]
    return VoiceAnswer(render(verbs), HANGUP, reason)


def empty(outcome: str = EMPTY) -> VoiceAnswer:
    """``<Response />``: nothing to do for this POST."""
    return VoiceAnswer(empty_response(), outcome)
