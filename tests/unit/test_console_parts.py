"""The console's pure parts: model cost, overview figures, the timeline, escaping."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from mapokezi.outcomes import CallOutcome
from mapokezi_cli.console.charts import timeline_marks, timeline_svg
from mapokezi_cli.console.overview import summarise
from mapokezi_cli.console.pages import render_call, render_calls, render_messages
from mapokezi_cli.console.pricing import ModelPrices, model_cost_usd

PRICES = ModelPrices()


def test_model_cost_bills_each_kind_of_token_at_its_price() -> None:
    usage = {
        "input_text_tokens": 1_000_000,
        "input_audio_tokens": 2_000_000,
        "input_cached_tokens": 500_000,  # part of the audio input
        "output_text_tokens": 100_000,
        "output_audio_tokens": 1_000_000,
    }
    expected = 4.0 + 1.5 * 32.0 + 0.5 * 0.4 + 0.1 * 16.0 + 64.0
    assert model_cost_usd(usage, PRICES) == pytest.approx(expected)
    assert model_cost_usd({}, PRICES) is None


def test_prices_come_from_variables_then_flags() -> None:
    prices = ModelPrices.from_env(
        {"MAPOKEZI_PRICE_AUDIO_OUT": "20", "MAPOKEZI_PRICE_TEXT_IN": "1.5"}, {"text_in": "2"}
    )
    assert (prices.audio_out, prices.text_in, prices.audio_in) == (20.0, 2.0, 32.0)
    with pytest.raises(ValueError, match="unknown price 'video'"):
        ModelPrices.from_env({}, {"video": "1"})
    with pytest.raises(ValueError, match="not a number"):
        ModelPrices.from_env({"MAPOKEZI_PRICE_AUDIO_IN": "cheap"})


def _call(day: str, **extra: Any) -> dict[str, Any]:
    return {"started_at": f"{day}T10:00:00.000Z", "status": "ended", **extra}


def test_overview_shares_medians_costs_and_empty_days() -> None:
    calls = [
        _call("2026-11-20", metrics={"time_to_first_audio_ms": 800, "reply_latency_ms": [500]}),
        _call(
            "2026-11-20",
            handoff={"kind": "transfer", "state": "dialled", "target": "+254711000001"},
            cdr={"cost_minor": 300, "cost_currency": "KES"},
            metrics={"time_to_first_audio_ms": 600, "reply_latency_ms": [700, 900]},
        ),
        _call("2026-11-22", handoff={"kind": "transfer", "state": "stranded"}),
        _call("2026-11-22", message={"name": "A", "message": "call me"}),
    ]
    overview = summarise(calls, PRICES, first_day=date(2026, 11, 20), last_day=date(2026, 11, 22))
    assert overview.calls == 4
    assert overview.handled_share == pytest.approx(2 / 4)  # handled + message taken
    assert overview.transfer_success == pytest.approx(1 / 2)  # dialled vs stranded
    assert overview.median_first_audio_ms == 700
    assert overview.median_reply_latency_ms == 700
    assert overview.cost_minor == 300
    assert overview.outcomes == {"handled": 1, "transferred": 1, "stranded": 1, "message_taken": 1}
    assert [(d.day, d.calls) for d in overview.days] == [
        ("2026-11-20", 2),
        ("2026-11-21", 0),
        ("2026-11-22", 2),
    ]


RECORD = {
    "call_id": "c1",
    "from": "+254711000001",
    "started_at": "2026-11-20T10:00:00.000Z",
    "ended_at": "2026-11-20T10:00:30.000Z",
    "status": "ended",
    "handoff": {
        "kind": "transfer",
        "state": "connected",
        "requested_at": "2026-11-20T10:00:12.000Z",
        "changes": [
            {"state": "dialled", "at": "2026-11-20T10:00:12.000Z"},
            {"state": "connected", "at": "2026-11-20T10:00:20.000Z"},
        ],
    },
    "transcript": [
        {
            "role": "agent",
            "text": "Hello",
            "at_ms": 0,
            "heard_ms": 1000,
            "generated_ms": 3000,
            "interrupted": True,
            "generated_text": "Hello there, how can I help?",
        },
        {"role": "caller", "text": "one two three four five", "at_ms": 1500},
        {"role": "agent", "text": "Sure", "at_ms": 2500, "heard_ms": 800},
    ],
}


def test_timeline_marks_speech_barge_ins_and_handoff_states() -> None:
    marks = timeline_marks(RECORD)
    first, second = marks["receptionist"]
    assert (first["start"], first["end"], first["faded_end"]) == (0, 1000, 3000)
    assert second["end"] == 3300
    # The caller turn is given its spoken length, cut where the next turn starts.
    assert marks["caller"] == [{"start": 1500, "end": 2500, "label": "one two three four five"}]
    assert marks["barge_ins"] == [1000]
    assert [(p["at"], p["label"]) for p in marks["handoff"]] == [
        (12000, "requested"),
        (12000, "dialled"),
        (20000, "connected"),
    ]
    assert marks["end"] == 30000
    svg = timeline_svg(RECORD)
    assert svg.count('class="barge-in"') == 1 and svg.count('class="handoff-point"') == 3


HOSTILE = '"><script>alert(1)</script>'


def test_everything_from_a_call_is_escaped() -> None:
    record = {
        **RECORD,
        "from": HOSTILE,
        "call_id": HOSTILE,
        "transcript": [{"role": HOSTILE, "text": HOSTILE, "at_ms": 0}],
        "events": [{"source": HOSTILE, "received_at": HOSTILE, "x": HOSTILE}],
        "message": {"name": HOSTILE, "message": HOSTILE},
        "cdr": {"status": HOSTILE},
    }
    pages = [
        render_calls([record], filters={"number": HOSTILE}, next_cursor=HOSTILE),
        render_call(record, prices=PRICES, recording={"state": "ready", "url": HOSTILE}),
        render_messages([record]),
        timeline_svg(record),
    ]
    for html in pages:
        assert "<script>" not in html
        assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]


def test_outcome_badges_cover_every_outcome() -> None:
    from mapokezi_cli.console.html import OUTCOME_BADGES

    assert set(OUTCOME_BADGES) == set(CallOutcome)
