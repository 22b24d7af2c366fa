"""The offline model of `make run`: which line it speaks for each of the media node's asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from doubles.openai_realtime import Trigger
from local.offline_model import AUDIO_DIR, LINES, OfflineReceptionist
from mapokezi.profiles import load_profile_file, parse_profile
from media_node import prompts

PROFILE = parse_profile(
    load_profile_file(Path(__file__).resolve().parents[2] / "profiles" / "example.yaml"),
    "+254700000100",
)


def test_every_line_has_its_recording() -> None:
    assert sorted(p.stem for p in AUDIO_DIR.glob("*.wav")) == sorted(LINES)


@pytest.mark.parametrize(
    ("kind", "instructions", "line"),
    [
        (
            "function_output",
            prompts.introduction_instructions(PROFILE, "Wants a cleaning"),
            "introduction",
        ),
        ("function_output", prompts.nobody_available_instructions(PROFILE), "nobody_free"),
        (
            "greeting",
            prompts.person_left_instructions(
                PROFILE, "You: I am sorry, nobody is free right now. Caller: hello"
            ),
            "welcome_back",
        ),
        ("function_output", None, "connecting"),
    ],
)
def test_transfer_prompts_get_their_lines(kind: Any, instructions: str | None, line: str) -> None:
    state: Any = None  # the receptionist's choice depends only on the trigger
    reply = OfflineReceptionist().respond(state, Trigger(kind, instructions=instructions))
    assert reply.text == LINES[line]
