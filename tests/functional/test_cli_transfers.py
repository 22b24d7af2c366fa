"""``mapokezi`` CLI: handoff outcomes at a glance, what a number taught us, messages."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from mapokezi import handoff, messages, store
from mapokezi.profiles import load_profile_file, parse_profile
from mapokezi_cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "profiles" / "example.yaml"
NUMBER = "+254700000100"
CALLER = "+254722000111"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_calls_list_shows_rescued_and_stranded_handoffs(
    calls_table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for call_id in ("HD_rescued", "HD_stranded"):
        store.create_call(calls_table, call_id=call_id, caller=CALLER, to=NUMBER, retention_days=1)
        store.record_handoff(calls_table, call_id, {"kind": "transfer", "target": "+254711000001"})
        store.mark_ended(calls_table, call_id, reason="completed")
    store.claim_rescue(calls_table, "HD_rescued")
    store.record_handoff_change(
        calls_table,
        "HD_rescued",
        handoff.state_change("connected", 1_764_400_006.2),
        {"time_to_person_ms": 6200},
    )
    code, out, err = run(capsys, "calls", "list")
    assert code == 0 and err == ""
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "rescued (rescue: connected in 6.2 s)" in rows["HD_rescued"]
    assert "stranded (pending: pending)" in rows["HD_stranded"]


def test_profile_show_prints_what_was_learned(
    calls_table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    store.put_profile(calls_table, parse_profile(load_profile_file(EXAMPLE), number=NUMBER))
    _, out, _ = run(capsys, "profile", "show", NUMBER)
    assert "learned after a stream: nothing yet" in out
    assert "next handoff path: dial (strategy auto)" in out
    store.learn_platform_behaviour(calls_table, NUMBER, handoff.LEARNED_NO_REPOST, call_id="HD_9")
    _, out, _ = run(capsys, "profile", "show", NUMBER)
    assert "learned after a stream: no_repost" in out and "on call HD_9" in out
    assert "next handoff path: supervise (strategy auto)" in out
    _, out, _ = run(capsys, "profile", "show", NUMBER, "--json")
    data = json.loads(out)
    assert data["learned"]["after_stream"] == "no_repost" and data["handoff"]["strategy"] == "auto"


def test_messages_list_open_and_done(calls_table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    store.create_call(calls_table, call_id="HD_m", caller=CALLER, to=NUMBER, retention_days=1)
    taken = []
    for i, name in enumerate(["Amina", "Baraka"]):
        message = messages.message_from_tool_call(
            {"name": name, "callback_number": "this number", "message": f"note {i}"},
            call_id="HD_m",
            caller=CALLER,
            to=NUMBER,
            created_at=f"2026-11-29T1{i}:00:00.000Z",
        )
        messages.put_message(calls_table, message, retention_days=1)
        taken.append(message)
    code, out, _ = run(capsys, "messages", "list", "--number", NUMBER)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["TAKEN", "ID", "STATE", "URGENCY"]
    assert [line.split()[4] for line in lines[1:]] == ["Baraka", "Amina"]
    code, out, _ = run(capsys, "messages", "done", taken[0].message_id)
    assert code == 0 and out == f"message {taken[0].message_id} from Amina marked done\n"
    _, out, _ = run(capsys, "messages", "list", "--open", "--json")
    assert [m["name"] for m in json.loads(out)["messages"]] == ["Baraka"]
    code, _, err = run(capsys, "messages", "done", "nope")
    assert (code, err) == (1, "error: message 'nope' not found\n")
    code, _, err = run(capsys, "messages", "list", "--number", "0700")
    assert code == 2 and "--number" in err
    _, out, _ = run(capsys, "messages", "list", "--number", "+254799999999")
    assert out == "no messages\n"
