"""Limits on webhook bodies and on the copy of a delivery stored with its event."""

from __future__ import annotations

import json

import pytest

from serverless import bounds
from serverless.webhook import MAX_NUMBER_LENGTH, WebhookError, parse_body, phone_number


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        ('{"a": [1, {"b": 2}]}', False),
        ("[" * 16 + "]" * 16, False),
        ("[" * 17 + "]" * 17, True),
        ('{"a": "[[[[[[[[[[[[[[[[[[[[[["}', False),  # brackets inside strings do not count
        ('{"a": "\\"[[[[[[[[[[[[[[[[[[[["}', False),  # nor after an escaped quote
    ],
)
def test_json_depth_is_measured_outside_strings(text: str, too_deep: bool) -> None:
    assert bounds.json_too_deep(text) is too_deep


def test_depth_is_checked_before_parsing() -> None:
    with pytest.raises(WebhookError, match="nests deeper"):
        parse_body(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json")


def test_huge_integers_are_a_webhook_error_not_a_crash() -> None:
    with pytest.raises(WebhookError, match="not usable JSON"):
        parse_body(b'{"CallSid": 1' + b"0" * 5000 + b"}", "application/json")


def test_clean_text_replaces_lone_surrogates_and_cuts() -> None:
    assert bounds.clean_text("ab\ud800cd", 10) == "ab\ufffdcd"
    assert bounds.clean_text("x" * 20, 5) == "xxxxx"


def test_storable_fields_keeps_small_deliveries_as_they_are() -> None:
    fields = {"CallSid": "abc", "isActive": True, "duration": 12, "cost": 1.5, "none": None}
    assert bounds.storable_fields(fields) == fields


def test_storable_fields_bounds_everything() -> None:
    fields = {f"f{i}": "v" * 10_000 for i in range(100)}
    fields["nested"] = {"a": {"b": {"c": {"d": 1}}}, "list": list(range(100))}
    stored = bounds.storable_fields(fields)
    size = len(json.dumps(stored, ensure_ascii=False).encode())
    assert size <= bounds.MAX_STORED_BYTES + 64
    assert stored[bounds.TRUNCATED] is True
    assert len(stored) <= bounds.MAX_STORED_FIELDS + 1


def test_storable_fields_turns_unstorable_numbers_into_text() -> None:
    stored = bounds.storable_fields({"inf": float("inf"), "big": 10**40, "ok": 10**37})
    assert stored["inf"] == "inf" and stored["big"] == str(10**40) and stored["ok"] == 10**37
    assert stored[bounds.TRUNCATED] is True


def test_phone_numbers_are_cut_and_keep_only_number_characters() -> None:
    assert phone_number({"From": "+254 712-000\x1b[31m111"}, ("From",)) == "+254712-00031m111"
    assert len(phone_number({"To": "+" + "1" * 500}, ("To",)) or "") == MAX_NUMBER_LENGTH
    assert phone_number({"From": "\u202e\u202e"}, ("From",)) is None


def test_long_dedupe_keys_stay_within_the_sort_key_limit_and_stay_distinct() -> None:
    from mapokezi import keys

    short = keys.event_key("call", "voice", "StreamStopped")
    assert short[keys.SK] == "EVENT#voice#StreamStopped"
    long_a = keys.event_key("call", "voice", "\U0001f600" * 256)
    long_b = keys.event_key("call", "voice", "\U0001f600" * 255 + "x")
    assert long_a != long_b
    assert len(long_a[keys.SK].encode()) < 200
    assert keys.event_key("call", "voice", "\ud800" * 300)[keys.SK].isprintable()
