"""What the receptionist is told: session instructions, per-reply instructions and its tools.

Everything here is provider-neutral text and JSON Schema; the model adapters wrap it in their own
wire shapes. Per-reply instructions *replace* the session's for that reply (OpenAI Realtime), so
each of them repeats the persona before saying what to do now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mapokezi.profiles import Profile

TRANSFER_TOOL = "transfer_to_human"
END_CALL_TOOL = "end_call"
TAKE_MESSAGE_TOOL = "take_message"

EARLIER_MAX_CHARS = 4000
"""Bound on what a new session of the same call is told about the conversation before it:
the latest turns are kept, so the instructions stay small whatever the call's length."""

_TOOL_RULES = """\
Tools:
- Call transfer_to_human when the caller asks for a person, when they need something only staff \
can do, when they have an emergency, or when you cannot help. Give a short reason that states \
what the caller wants, and the department when one fits. Do not say goodbye before calling it; \
you will be asked to say a short handoff line afterwards.
- Call end_call only after the caller has said goodbye or clearly has nothing more to ask.
- Never invent facts, prices or appointment times; if the facts below do not answer a question, \
say so and offer to connect the caller to a person."""

_PHONE_STYLE = """\
You are on a live phone call. Keep every reply to one or two short sentences, speak naturally, \
and stop talking as soon as the caller interrupts. Never read out lists, markup or URLs."""


_MESSAGE_RULES = """\
Taking a message:
- When nobody can take the call, or the caller would rather leave a message, offer to take one. \
Ask for their name, the number to call back on (they may say "this number" for the one they \
are calling from), the message, and how urgent it is.
- Before saving, read the message back in one or two sentences (name, number, message) and ask \
whether it is right. Call take_message only after the caller confirms; if it reports a problem \
with a field, ask for that again.
- After take_message succeeds, tell the caller the message has been passed on."""


def session_instructions(
    profile: Profile, *, take_messages: bool = False, earlier: str = ""
) -> str:
    """The session's system prompt: persona, phone style, facts, departments, tool rules
    (and how to take a message when ``take_messages``), and for a new session in a call that
    went on without the model, ``earlier``: the conversation before (`earlier_in_call`)."""
    parts = [
        f"You are the receptionist answering the phone for {profile.business_name}.",
        profile.instructions.strip(),
        _PHONE_STYLE,
        _language_rule(profile),
    ]
    if profile.facts:
        parts.append("Facts about the business:\n" + "\n".join(f"- {f}" for f in profile.facts))
    if profile.departments:
        lines = [f"- {d.name}: {d.description}".rstrip(": ") for d in profile.departments]
        parts.append(
            "Departments you can transfer to (otherwise the front desk):\n" + "\n".join(lines)
        )
    parts.append(_TOOL_RULES)
    if take_messages:
        parts.append(_MESSAGE_RULES)
    parts.append(earlier)
    return "\n\n".join(p for p in parts if p)


def earlier_in_call(turns: Iterable[Mapping[str, Any]], summary: str) -> str:
    """What a new session must know of the call so far: the conversation as the caller heard
    it (``turns`` in the call record's shape: ``role`` ``caller``/``agent`` and ``text``, oldest
    first) and the note the colleague was given. Only the latest turns are kept when it would
    exceed `EARLIER_MAX_CHARS`; empty when there is nothing to tell."""
    lines = [
        f"{'Caller' if t.get('role') == 'caller' else 'You'}: {_clip(str(t.get('text') or ''))}"
        for t in turns
        if str(t.get("text") or "").strip()
    ]
    head = (
        "Earlier in this call (before you put the caller through to a colleague), as the "
        "caller heard it. Do not ask again for anything the caller already told you:"
    )
    note = f"The colleague was told: {_clip(summary)}" if summary.strip() else ""
    if not lines and not note:
        return ""
    left_out = "(earlier turns left out)"
    # Room for the turns, with their line breaks and the mark that some were left out.
    room = EARLIER_MAX_CHARS - len(head) - len(note) - len(left_out) - 3
    kept: list[str] = []
    for line in reversed(lines):
        if len(line) + 1 > room:
            kept.append(left_out)
            break
        kept.append(line)
        room -= len(line) + 1
    return "\n".join(p for p in [head, *reversed(kept), note] if p)


def _language_rule(profile: Profile) -> str:
    return (
        f"Start in the language with code '{profile.language}'. If the caller speaks another "
        "language you know, answer in theirs."
    )


def greeting_instructions(profile: Profile) -> str:
    """Per-reply instructions that make the model open the call with the profile's greeting."""
    line = profile.greeting
    if profile.disclosure:  # the notice goes with the greeting, before the caller says anything
        line = f"{line} {profile.disclosure}"
    return _reply(profile, f'Greet the caller now by saying exactly: "{line}"')


def _clip(text: str, limit: int = 1000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def handoff_line_instructions(profile: Profile, kind: str) -> str:
    """Per-reply instructions for the short line after a transfer or end_call tool call."""
    if kind == "transfer":
        task = (
            "You have just arranged to connect the caller to a colleague. In one short sentence, "
            "tell them you are connecting them now. Do not ask anything."
        )
    else:
        task = "The call is ending. Say a brief, warm goodbye in one short sentence."
    return _reply(profile, task)


def nobody_available_instructions(profile: Profile) -> str:
    """Per-reply instructions when the transfer reached nobody (no answer, busy, an error)."""
    return _reply(
        profile,
        "You tried to connect the caller to a colleague, but nobody is free right now. Say so "
        "briefly and kindly, and offer to take a message so someone calls them back.",
    )


def person_left_instructions(profile: Profile, earlier: str = "") -> str:
    """Per-reply instructions when the colleague left while the caller stayed on the line;
    ``earlier`` (`earlier_in_call`) goes with them, since a reply's instructions replace the
    session's."""
    task = (
        "Your colleague has left the call and the caller is still here. Briefly ask whether "
        "there is anything else you can help with, or offer to take a message."
    )
    return _reply(profile, f"{task}\n\n{earlier}" if earlier else task)


def introduction_instructions(profile: Profile, summary: str) -> str:
    """Per-reply instructions for the one-sentence introduction both caller and colleague hear."""
    return _reply(
        profile,
        "A colleague has just joined the call; the caller and the colleague both hear you. In "
        "one short sentence, introduce the caller's request to the colleague, based on this "
        f"summary, then say nothing more: {summary[:500]}",
    )


def time_warning_instructions(profile: Profile) -> str:
    """Per-reply instructions a minute before the call's length limit."""
    return _reply(
        profile,
        "The call will reach its time limit in about a minute. Politely tell the caller, and "
        "offer to connect them to a colleague if they still need help.",
    )


def idle_prompt_instructions(profile: Profile) -> str:
    """Per-reply instructions when the caller has been silent for a while."""
    return _reply(profile, "The caller has gone quiet. Briefly ask whether they are still there.")


def idle_goodbye_instructions(profile: Profile) -> str:
    """Per-reply instructions before hanging up on a silent caller."""
    return _reply(
        profile,
        "The caller has not answered. Say a brief, polite goodbye and invite them to call again.",
    )


def _reply(profile: Profile, task: str) -> str:
    return (
        f"You are the receptionist answering the phone for {profile.business_name}. "
        f"{_PHONE_STYLE} {_language_rule(profile)}\n\n{task}"
    )


def take_message_spec() -> dict[str, Any]:
    """The ``take_message`` tool (see ``mapokezi.messages.message_from_tool_call``)."""
    return {
        "name": TAKE_MESSAGE_TOOL,
        "description": (
            "Save a message for the business after reading it back to the caller and hearing "
            "them confirm it. Someone will call them back."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The caller's name."},
                "callback_number": {
                    "type": "string",
                    "description": (
                        "Number to call back, digits as said (e.g. 0712 345 678), or 'this "
                        "number' for the number the caller is calling from."
                    ),
                },
                "message": {"type": "string", "description": "The message, in their words."},
                "urgency": {
                    "type": "string",
                    "enum": ["low", "normal", "high", "urgent"],
                    "description": "How soon they need a call back (default normal).",
                },
            },
            "required": ["name", "callback_number", "message"],
            "additionalProperties": False,
        },
    }


def tool_specs(profile: Profile, *, take_messages: bool = False) -> list[dict[str, Any]]:
    """The tools as ``{name, description, parameters}`` with JSON Schema parameters
    (``take_message`` too when ``take_messages``)."""
    department: dict[str, Any] = {
        "type": "string",
        "description": "The department that can help; leave out for the front desk.",
    }
    if profile.departments:
        department["enum"] = [d.name for d in profile.departments]
    return [
        {
            "name": TRANSFER_TOOL,
            "description": (
                "Connect the caller to a human colleague. Use when the caller asks for a person "
                "or needs help you cannot give."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "description": "What the caller wants, in one sentence, for the colleague.",
                    },
                    "department": department,
                },
                "required": ["reason"],
                "additionalProperties": False,
            },
        },
        {
            "name": END_CALL_TOOL,
            "description": "End the call after the caller has said goodbye.",
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why the call is ending."}
                },
                "required": ["reason"],
                "additionalProperties": False,
            },
        },
    ] + ([take_message_spec()] if take_messages else [])
