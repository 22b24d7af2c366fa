"""Receptionist profiles: the example file, every validation error path, opening hours."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mapokezi.profiles import (
    OpeningHours,
    ProfileError,
    load_profile_file,
    parse_profile,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "profiles" / "example.yaml"
NUMBER = "+254700000100"
MINIMAL = {
    "business_name": "Duka",
    "greeting": "Habari!",
    "instructions": "Be kind.",
    "front_desk": "+254711000001",
}


def errors_of(data: dict[str, Any], number: str | None = NUMBER) -> list[str]:
    with pytest.raises(ProfileError) as exc:
        parse_profile(data, number=number)
    return exc.value.errors


def test_example_profile_is_valid() -> None:
    profile = parse_profile(load_profile_file(EXAMPLE), number=NUMBER)
    assert profile.business_name == "Karibu Dental Clinic"
    assert profile.voice == "marin" and profile.audio.sample_rate == 16000
    assert profile.transfer_target("Appointments") == "+254711000002"
    assert profile.transfer_target("plumbing") == profile.front_desk == "+254711000001"
    assert profile.transfer_target(None) == "+254711000001"
    assert profile.hours is not None and profile.hours.weekly["sun"] == ()
    assert "2026-12-25" in profile.hours.closed_dates
    # Stored as JSON (store.put_profile); to_dict keeps tuples, which JSON turns into lists.
    assert parse_profile(json.loads(json.dumps(profile.to_dict()))) == profile


def test_minimal_profile_gets_defaults() -> None:
    profile = parse_profile(MINIMAL, number=NUMBER)
    assert profile.language == "en" and profile.dial_timeout_seconds == 30
    assert profile.hours is None and profile.is_open(datetime.now(UTC))
    assert profile.turn_detection.type == "server_vad" and profile.limits.max_call_seconds == 900


def test_number_argument_overrides_data() -> None:
    assert parse_profile({**MINIMAL, "number": "+254799999999"}, number=NUMBER).number == NUMBER
    assert errors_of(MINIMAL, number=None) == ["number: must be an E.164 number like +254712345678"]


def test_required_fields_and_types() -> None:
    assert errors_of({"greeting": "  ", "front_desk": 254711000001}) == [
        "business_name: is required",
        "greeting: must be non-empty text",
        "instructions: is required",
        "front_desk: must be an E.164 number like +254712345678",
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"colour": "blue"}, "colour: unknown field"),
        ({"business_name": "x" * 121}, "business_name: must be at most 120 characters"),
        ({"language": "English"}, "language: 'English' is not a valid value"),
        (
            {"voice": "robot"},
            "voice: must be one of alloy, ash, ballad, coral, echo, sage, "
            "shimmer, verse, marin, cedar",
        ),
        ({"facts": "one fact"}, "facts: must be a list of at most 200 texts"),
        ({"facts": ["ok", ""]}, "facts[1]: must be non-empty text of <= 1000 chars"),
        (
            {"after_hours_number": "0711000009"},
            "after_hours_number: must be an E.164 number like +254712345678",
        ),
        ({"dial_timeout_seconds": 3}, "dial_timeout_seconds: must be a whole number from 5 to 120"),
        (
            {"dial_timeout_seconds": True},
            "dial_timeout_seconds: must be a whole number from 5 to 120",
        ),
        ({"retention_days": 0}, "retention_days: must be a whole number from 1 to 3650"),
        ({"lines": "hello"}, "lines: must be a mapping"),
        ({"lines": {"greeting": "hi"}}, "lines.greeting: unknown field"),
        ({"audio": {"sample_rate": 44100}}, "audio.sample_rate: must be one of 16000, 8000"),
        (
            {"audio": {"track": "outbound_track"}},
            "audio.track: must be one of inbound_track, both_tracks",
        ),
        (
            {"turn_detection": {"threshold": 1.5}},
            "turn_detection.threshold: must be a number from 0.0 to 1.0",
        ),
        (
            {"turn_detection": {"eagerness": "eager"}},
            "turn_detection.eagerness: must be one of low, medium, high, auto",
        ),
        (
            {"limits": {"max_call_seconds": 30}},
            "limits.max_call_seconds: must be a whole number from 60 to 3600",
        ),
        ({"departments": {"name": "x"}}, "departments: must be a list"),
        ({"departments": ["sales"]}, "departments[0]: must be a mapping with name and number"),
        ({"departments": [{"name": "sales"}]}, "departments[0].number: is required"),
        (
            {"departments": [{"name": "sales", "number": "+254711000002", "floor": 2}]},
            "departments[0].floor: unknown field",
        ),
        (
            {
                "departments": [
                    {"name": "sales", "number": "+254711000002"},
                    {"name": "Sales", "number": "+254711000003"},
                ]
            },
            "departments[1].name: duplicate department 'Sales'",
        ),
        ({"hours": "9-5"}, "hours: must be a mapping with timezone and weekly"),
        (
            {"hours": {"timezone": "Mars/Olympus"}},
            "hours.timezone: unknown timezone 'Mars/Olympus'",
        ),
        (
            {"hours": {"weekly": ["mon"]}},
            "hours.weekly: must map days (mon..sun) to lists of HH:MM-HH:MM",
        ),
        (
            {"hours": {"weekly": {"monday": []}}},
            "hours.weekly.monday: unknown day (use mon, tue, wed, thu, fri, sat, sun)",
        ),
        (
            {"hours": {"weekly": {"mon": 9}}},
            "hours.weekly.mon: must be a list of HH:MM-HH:MM ranges",
        ),
        (
            {"hours": {"weekly": {"mon": ["8-17"]}}},
            "hours.weekly.mon[0]: must look like 08:00-17:30",
        ),
        (
            {"hours": {"weekly": {"mon": ["17:00-08:00"]}}},
            "hours.weekly.mon[0]: must end after it starts",
        ),
        (
            {"hours": {"closed_dates": "2026-12-25"}},
            "hours.closed_dates: must be a list of YYYY-MM-DD dates",
        ),
        (
            {"hours": {"closed_dates": ["25/12/2026"]}},
            "hours.closed_dates[0]: must be a YYYY-MM-DD date",
        ),
        ({"hours": {"days": {}}}, "hours.days: unknown field"),
    ],
)
def test_each_error_has_its_field_path(extra: dict[str, Any], expected: str) -> None:
    assert errors_of({**MINIMAL, **extra}) == [expected]


def test_all_errors_are_reported_together() -> None:
    errors = errors_of({**MINIMAL, "voice": "robot", "limits": {"idle_end_seconds": 1}, "x": 1})
    assert errors == [
        "x: unknown field",
        "voice: must be one of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar",
        "limits.idle_end_seconds: must be a whole number from 5 to 600",
    ]
    with pytest.raises(ProfileError, match=r"^invalid profile:\n  x: unknown field"):
        parse_profile({**MINIMAL, "x": 1}, number=NUMBER)


def test_profile_files(tmp_path: Path) -> None:
    as_json = tmp_path / "p.json"
    as_json.write_text('{"business_name": "Duka"}', encoding="utf-8")
    assert load_profile_file(as_json) == {"business_name": "Duka"}
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ProfileError) as exc:
        load_profile_file(broken)
    assert exc.value.errors[0].startswith("broken.json: not valid JSON")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ProfileError) as exc:
        load_profile_file(listed)
    assert exc.value.errors == ["list.yaml: the top level must be a mapping of fields"]


# -- opening hours ---------------------------------------------------------------------------

NAIROBI_HOURS = OpeningHours(
    "Africa/Nairobi",
    {"fri": ("08:00-17:30",), "sat": ("09:00-13:00", "20:00-24:00"), "sun": ()},
    ("2026-12-25",),
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (utc("2026-11-20T05:00:00"), True),  # Fri 08:00 Nairobi: opening minute counts
        (utc("2026-11-20T04:59:59"), False),  # Fri 07:59:59
        (utc("2026-11-20T14:29:59"), True),  # Fri 17:29:59
        (utc("2026-11-20T14:30:00"), False),  # Fri 17:30: closing time is exclusive
        (utc("2026-11-21T11:00:00"), False),  # Sat 14:00: between the two ranges
        (utc("2026-11-21T20:30:00"), True),  # Sat 23:30 Nairobi although Sat 20:30 UTC
        (utc("2026-11-21T21:00:00"), False),  # Sun 00:00 Nairobi while still Saturday in UTC
        (utc("2026-11-20T22:00:00"), False),  # Fri 22:00 UTC = Sat 01:00 Nairobi
        (utc("2026-12-25T06:00:00"), False),  # a Friday, but a closed date
        (utc("2026-12-24T21:30:00"), False),  # Thu in UTC, already Dec 25 in Nairobi
    ],
)
def test_opening_hours_in_local_time(moment: datetime, is_open: bool) -> None:
    assert NAIROBI_HOURS.is_open(moment) is is_open


def test_opening_hours_accept_any_aware_zone() -> None:
    new_york = timezone(timedelta(hours=-5))
    friday_9am_nairobi = datetime(2026, 11, 20, 1, 0, tzinfo=new_york)  # = 06:00 UTC
    assert NAIROBI_HOURS.is_open(friday_9am_nairobi)


def test_hours_in_another_timezone_follow_its_dst() -> None:
    hours = OpeningHours("Europe/London", {"mon": ("09:00-17:00",)})
    assert hours.is_open(utc("2026-07-06T08:30:00"))  # 09:30 BST
    assert not hours.is_open(utc("2026-01-05T08:30:00"))  # 08:30 GMT


def test_model_defaults_to_openai_with_the_top_level_voice() -> None:
    profile = parse_profile({**MINIMAL, "voice": "cedar"}, number=NUMBER)
    assert profile.model.provider == "openai" and profile.model.name is None
    assert profile.model_voice == "cedar"


def test_gemini_model_choice() -> None:
    data = {**MINIMAL, "model": {"provider": "gemini", "name": "gemini-3.1-flash-live-preview"}}
    profile = parse_profile(data, number=NUMBER)
    assert profile.model.provider == "gemini"
    assert profile.model.name == "gemini-3.1-flash-live-preview"
    assert profile.model_voice == "Kore"  # the Gemini default, not the OpenAI top-level voice
    voiced = parse_profile({**MINIMAL, "model": {"provider": "gemini", "voice": "Puck"}}, NUMBER)
    assert voiced.model_voice == "Puck"
    # The stored form reads back the same.
    assert parse_profile(json.loads(json.dumps(profile.to_dict())), number=NUMBER) == profile


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"provider": "anthropic"}, "model.provider: must be one of openai, gemini"),
        ({"provider": "gemini", "voice": "marin"}, "model.voice: 'marin' is not a gemini voice"),
        ({"provider": "openai", "voice": "Puck"}, "model.voice: 'Puck' is not a openai voice"),
        ({"name": "gemini-2.5"}, "model.provider: is required"),
        ({"provider": "gemini", "temperature": 1}, "model.temperature: unknown field"),
        ({"provider": "gemini", "name": "bad name!"}, "model.name: 'bad name!' is not a valid"),
        ("gemini", "model: must be a mapping"),
    ],
)
def test_model_choice_errors(model: Any, expected: str) -> None:
    errors = errors_of({**MINIMAL, "model": model})
    assert any(e.startswith(expected) for e in errors), errors
