"""What the receptionist is told about messages and transfers, and what the emulator prints."""

from __future__ import annotations

import json
from pathlib import Path

from local.emulator.call import CallResult
from local.emulator.report import format_summary
from local.emulator.webhook import CallIdentity
from mapokezi.profiles import load_profile_file, parse_profile
from media_node import prompts

PROFILE = parse_profile(
    load_profile_file(Path(__file__).resolve().parents[2] / "profiles" / "example.yaml"),
    number="+254700000100",
)


def test_take_message_is_offered_only_when_asked_for() -> None:
    names = [t["name"] for t in prompts.tool_specs(PROFILE)]
    assert prompts.TAKE_MESSAGE_TOOL not in names
    spec = prompts.tool_specs(PROFILE, take_messages=True)[-1]
    assert spec["name"] == "take_message"
    assert spec["parameters"]["required"] == ["name", "callback_number", "message"]
    assert spec["parameters"]["properties"]["urgency"]["enum"] == [
        "low",
        "normal",
        "high",
        "urgent",
    ]
    json.dumps(spec)  # plain JSON Schema
    assert "Taking a message" not in prompts.session_instructions(PROFILE)
    with_rules = prompts.session_instructions(PROFILE, take_messages=True)
    assert "read the message back" in with_rules and "after the caller confirms" in with_rules


def test_transfer_lines_name_the_business_and_the_task() -> None:
    for text in (
        prompts.nobody_available_instructions(PROFILE),
        prompts.person_left_instructions(PROFILE),
        prompts.introduction_instructions(PROFILE, "Wants to move Friday's check-up"),
    ):
        assert PROFILE.business_name in text
    assert "offer to take a message" in prompts.nobody_available_instructions(PROFILE)
    assert "Wants to move Friday's check-up" in prompts.introduction_instructions(
        PROFILE, "Wants to move Friday's check-up"
    )


def test_emulator_summary_shows_path_time_to_person_and_message() -> None:
    result = CallResult(CallIdentity("+254712345678", "+254700000100"), "2026-11-29T10:00:00Z")
    result.person = {
        "supervision_id": "sup_1",
        "states": [("connecting", 3.1), ("ringing", 3.3), ("connected", 4.4)],
        "connected_after_s": 4.4,
        "final_state": "connected",
        "reason": None,
        "heard_seconds": 3.9,
    }
    result.call_record = {
        "handoff": {
            "kind": "transfer",
            "path": "rescue",
            "state": "ended",
            "time_to_person_ms": 4210,
        },
        "message": {
            "name": "Amina",
            "callback_number": "+254722000111",
            "urgency": "high",
            "message": "Call me",
        },
    }
    text = format_summary(result)
    assert "supervision sup_1: connecting @3.1 s -> ringing @3.3 s -> connected @4.4 s" in text
    assert "Transfer: path rescue, state ended, time to a person 4.2 s" in text
    assert "Message taken: Amina (+254722000111, high): Call me" in text


def turn(role: str, text: str) -> dict[str, object]:
    return {"role": role, "text": text, "at_ms": 0}


def test_a_new_session_is_told_the_conversation_before_and_the_note() -> None:
    earlier = prompts.earlier_in_call(
        [
            turn("agent", "Karibu, how can I help?"),
            turn("caller", "I'm Amina; I'd like a cleaning on Saturday."),
            turn("agent", ""),  # a line with no transcript says nothing
            turn("agent", "Connecting you now."),
        ],
        'Wants a cleaning. Caller said: "I\'m Amina"',
    )
    lines = earlier.splitlines()
    assert lines[1:] == [
        "You: Karibu, how can I help?",
        "Caller: I'm Amina; I'd like a cleaning on Saturday.",
        "You: Connecting you now.",
        'The colleague was told: Wants a cleaning. Caller said: "I\'m Amina"',
    ]
    assert "Do not ask again" in lines[0]
    for instructions in (
        prompts.session_instructions(PROFILE, take_messages=True, earlier=earlier),
        prompts.person_left_instructions(PROFILE, earlier),
    ):
        assert instructions.endswith(earlier)
    assert prompts.earlier_in_call([], "") == ""
    assert prompts.session_instructions(PROFILE, earlier="") == prompts.session_instructions(
        PROFILE
    )


def test_a_long_call_keeps_its_latest_turns_within_the_bound() -> None:
    turns = [turn("caller" if i % 2 else "agent", f"turn {i} " + "word " * 40) for i in range(200)]
    earlier = prompts.earlier_in_call(turns, "Wants a cleaning. " + "x" * 3000)
    assert len(earlier) <= prompts.EARLIER_MAX_CHARS
    assert "turn 199 " in earlier and "turn 0 " not in earlier
    assert "(earlier turns left out)" in earlier
    assert earlier.splitlines()[-1].startswith("The colleague was told: Wants a cleaning.")
