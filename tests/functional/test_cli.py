"""``mapokezi`` CLI via main(argv): DynamoDB in moto, the query API over real HTTP through the
local gateway, and numbers against the Sautikit API double."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble
from local.gateway import Gateway, Route
from mapokezi import store
from mapokezi_cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "profiles" / "example.yaml"
NUMBER = "+254700000100"
BASE = 1_795_000_000.0


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, CLI output, stderr); output is kept apart from the in-process gateway's logs."""
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue(), capsys.readouterr().err


@pytest.fixture
def calls(calls_table: Any) -> Any:
    """Three calls; the middle one ended with a transfer, a transcript, metrics and a CDR."""
    for i, caller in enumerate(["+254711111111", "+254722222222", "+254733333333"]):
        store.create_call(
            calls_table,
            call_id=f"HD_cli{i}",
            caller=caller,
            to=NUMBER,
            retention_days=1,
            at=BASE + 60 * i,
        )
    store.mark_ended(calls_table, "HD_cli1", reason="Completed")
    store.record_handoff(
        calls_table,
        "HD_cli1",
        {
            "kind": "transfer",
            "target": "+254711000002",
            "reason": "booking",
            "summary": "Wants a check-up on Friday",
            "department": "appointments",
        },
    )
    store.add_turns(
        calls_table,
        "HD_cli1",
        [
            {
                "role": "agent",
                "text": "Karibu Dental Clinic!",
                "at_ms": 350,
                "generated_text": "Karibu Dental Clinic!",
                "heard_text": "Karibu Dental Clinic!",
                "interrupted": False,
            },
            {"role": "caller", "text": "I'd like to book a check-up", "at_ms": 2400},
            {"role": "agent", "text": "Sure, let me", "at_ms": 4100, "interrupted": True},
        ],
        retention_days=1,
    )
    store.put_metrics(
        calls_table,
        "HD_cli1",
        {
            "time_to_first_audio_ms": 410,
            "barge_ins": 1,
            "barge_in_stop_ms": [120],
            "reply_latency_ms": [640, 710],
        },
    )
    store.record_cdr(
        calls_table,
        "HD_cli1",
        {
            "status": "completed",
            "duration_seconds": 95,
            "cost_minor": 600,
            "cost_currency": "KES",
            "fetch_state": "done",
        },
    )
    return calls_table


# -- calls -----------------------------------------------------------------------------------


def test_calls_list_table(calls: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "calls", "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == [
        "STARTED",
        "CALL",
        "FROM",
        "TO",
        "STATUS",
        "OUTCOME",
        "HANDOFF",
        "SECONDS",
        "COST",
    ]
    assert [line.split()[1] for line in lines[1:]] == ["HD_cli2", "HD_cli1", "HD_cli0"]
    assert "+254711000002" in lines[2] and "KES 6.00" in lines[2] and "ended" in lines[2]
    # A handoff left pending when the call ended was never dialled: the outcome says so.
    assert [line.split()[5] for line in lines[1:]] == ["active", "stranded", "active"]


HOSTILE = "+2547\x1b[2J\x1b]0;pwned\x07\u202e1100\x9b31m\nFAKE LINE\u2028x"


def test_control_characters_never_reach_the_terminal(
    calls_table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = HOSTILE
    store.create_call(
        calls_table, call_id="HD_evil", caller=hostile, to=NUMBER, retention_days=1, at=BASE
    )
    store.add_turns(
        calls_table, "HD_evil", [{"role": "caller", "text": hostile, "at_ms": 1}], retention_days=1
    )
    store.record_handoff(calls_table, "HD_evil", {"kind": "transfer", "summary": hostile})
    for argv in (("calls", "list"), ("calls", "show", "HD_evil")):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        unsafe = [c for c in out if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
        assert unsafe == [], argv
        assert "\u202e" not in out and "\u2028" not in out
        assert "\\x1b[2J" in out and "\\u202e" in out  # shown, escaped
        assert "FAKE LINE" not in [line.strip() for line in out.splitlines()]
    code, out, _ = run(capsys, "calls", "show", "HD_evil", "--json")
    assert json.loads(out)["from"] == hostile  # --json stays exact and valid
    assert all(32 <= ord(c) < 127 or c == "\n" for c in out)


def test_calls_list_json_filters_and_cursor(calls: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "calls", "list", "--limit", "2", "--json")
    page = json.loads(out)
    assert code == 0 and [c["call_id"] for c in page["calls"]] == ["HD_cli2", "HD_cli1"]
    code, out, _ = run(capsys, "calls", "list", "--json", "--cursor", page["next_cursor"])
    assert [c["call_id"] for c in json.loads(out)["calls"]] == ["HD_cli0"]
    _, out, _ = run(capsys, "calls", "list", "--handoffs", "--json")
    assert [c["call_id"] for c in json.loads(out)["calls"]] == ["HD_cli1"]
    _, out, _ = run(capsys, "calls", "list", "--caller", "+254733333333", "--json")
    assert [c["call_id"] for c in json.loads(out)["calls"]] == ["HD_cli2"]
    _, out, _ = run(capsys, "calls", "list", "--number", NUMBER, "--status", "active", "--json")
    assert [c["call_id"] for c in json.loads(out)["calls"]] == ["HD_cli2", "HD_cli0"]


def test_calls_list_readable_mentions_next_page(
    calls: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "calls", "list", "--limit", "1")
    assert code == 0 and "more: add --cursor " in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "last week"], "error: since: 'last week' is not an ISO-8601 time"),
        (["--limit", "500"], "error: limit: must be from 1 to 100, got 500"),
        (["--cursor", "garbage!"], "error: cursor: invalid cursor"),
        (["--caller", "0722"], "error: caller: '0722' is not an E.164 number"),
    ],
)
def test_calls_list_bad_input_exits_2(
    calls: Any, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "calls", "list", *argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and "Traceback" not in err


def test_calls_show_readable(calls: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "calls", "show", "HD_cli1")
    assert code == 0
    assert "call      HD_cli1" in out and "status    ended" in out
    assert "  [00:00.3] agent: Karibu Dental Clinic!" in out
    assert "  [00:02.4] caller: I'd like to book a check-up" in out
    assert "  [00:04.1] agent: Sure, let me [interrupted]" in out
    assert "  target: +254711000002" in out and "  summary: Wants a check-up on Friday" in out
    assert "  time_to_first_audio_ms: 410" in out and "  reply_latency_ms: [640, 710]" in out
    assert "  cost_minor: 600" in out and "  cost: KES 6.00" in out


def test_calls_show_json_has_design_shape(calls: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "calls", "show", "HD_cli1", "--json")
    record = json.loads(out)
    assert code == 0
    for name in (
        "call_id",
        "from",
        "to",
        "status",
        "started_at",
        "ended_at",
        "handoff",
        "transcript",
        "metrics",
        "cdr",
    ):
        assert name in record
    assert [t["role"] for t in record["transcript"]] == ["agent", "caller", "agent"]
    assert record["cdr"]["cost_currency"] == "KES"


def test_calls_show_unknown_exits_1(calls: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "calls", "show", "HD_nope")
    assert (code, out, err) == (1, "", "error: call 'HD_nope' not found\n")


def test_missing_table_is_a_clear_aws_error(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--table", "no-such-table", "calls", "list")
    assert code == 1 and err.startswith("error: AWS: ") and "ResourceNotFoundException" in err


@pytest.fixture
def gateway(calls: Any) -> Iterator[str]:
    """The local HTTP API gateway serving only the calls routes, on a free port."""
    handler = "calls_api.app.lambda_handler"
    routes = [
        Route("GET", "/calls", "CallsApiFunction", handler, True),
        Route("GET", "/calls/{call_id}", "CallsApiFunction", handler, True),
    ]
    gw = Gateway(port=0, routes=routes).start()
    yield gw.url
    gw.stop()


def test_calls_over_http_api(gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "calls", "list", "--api", gateway, "--number", NUMBER, "--json")
    assert code == 0
    assert [c["call_id"] for c in json.loads(out)["calls"]] == ["HD_cli2", "HD_cli1", "HD_cli0"]
    code, out, _ = run(capsys, "calls", "list", "--api", gateway, "--limit", "2", "--json")
    cursor = json.loads(out)["next_cursor"]
    code, out, _ = run(capsys, "calls", "list", "--api", gateway, "--cursor", cursor, "--json")
    assert [c["call_id"] for c in json.loads(out)["calls"]] == ["HD_cli0"]
    code, out, _ = run(capsys, "calls", "show", "HD_cli1", "--api", gateway)
    assert code == 0 and "  [00:02.4] caller: I'd like to book a check-up" in out


def test_calls_over_http_api_errors(gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "calls", "show", "HD_nope", "--api", gateway)
    assert code == 1 and err == "error: call 'HD_nope' not found (HTTP 404)\n"
    code, _, err = run(capsys, "calls", "list", "--api", "http://127.0.0.1:9")
    assert code == 1 and err.startswith("error: cannot reach http://127.0.0.1:9")


# -- profiles --------------------------------------------------------------------------------


def test_profile_put_and_show(calls_table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "profile", "put", str(EXAMPLE), "--number", NUMBER)
    assert (code, err) == (0, "")
    assert out == f"stored profile for {NUMBER} (Karibu Dental Clinic)\n"
    assert store.get_profile(calls_table, NUMBER).front_desk == "+254711000001"
    code, out, _ = run(capsys, "profile", "show", NUMBER)
    assert code == 0 and "business_name: Karibu Dental Clinic" in out
    code, out, _ = run(capsys, "profile", "show", NUMBER, "--json")
    data = json.loads(out)
    assert data["departments"][0]["name"] == "appointments"
    assert data["hours"]["weekly"]["sat"] == ["09:00-13:00"]


def test_profile_put_lists_every_error_and_stores_nothing(
    calls_table: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "business_name: Duka\n"
        "greeting: Hello\n"
        "front_desk: '0711000001'\n"
        "voice: robot\n"
        "departments:\n  - name: sales\n    number: '12'\n"
        "hours:\n  weekly:\n    mon: ['18:00-08:00']\n"
        "colour: blue\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "profile", "put", str(bad), "--number", NUMBER)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"error: invalid profile {bad}",
        "  colour: unknown field",
        "  instructions: is required",
        "  front_desk: must be an E.164 number like +254712345678",
        "  voice: must be one of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin,"
        " cedar",
        "  hours.weekly.mon[0]: must end after it starts",
        "  departments[0].number: must be an E.164 number like +254712345678",
    ]
    assert store.get_profile(calls_table, NUMBER) is None


def test_profile_put_input_errors(
    calls_table: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "profile", "put", str(tmp_path / "missing.yaml"), "--number", NUMBER)
    assert code == 2 and err.startswith("error: cannot read ") and "No such file" in err
    code, _, err = run(capsys, "profile", "put", str(EXAMPLE), "--number", "0700000100")
    assert code == 2 and err.startswith("error: --number: '0700000100' is not an E.164 number")
    broken = tmp_path / "broken.yaml"
    broken.write_text("business_name: [unclosed\n", encoding="utf-8")
    code, _, err = run(capsys, "profile", "put", str(broken), "--number", NUMBER)
    assert code == 2 and "broken.yaml: not valid YAML" in err


def test_profile_show_unknown(calls_table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "profile", "show", "+254799999999")
    assert (code, err) == (1, "error: no profile for +254799999999\n")


# -- numbers ---------------------------------------------------------------------------------


@pytest.fixture
def sautikit(monkeypatch: pytest.MonkeyPatch) -> Iterator[SautikitApiDouble]:
    with SautikitApiDouble(wallet_balance_minor=15000) as api:
        monkeypatch.setenv("SAUTIKIT_API_URL", api.url)
        monkeypatch.setenv("SAUTIKIT_API_KEY", DEFAULT_API_KEY)
        yield api


def test_numbers_claim_lists_then_claims_and_routes(
    sautikit: SautikitApiDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "numbers", "claim", "--json")
    available = json.loads(out)
    assert code == 0 and {n["number"] for n in available} >= {NUMBER}
    code, out, _ = run(capsys, "numbers", "claim")
    assert code == 0 and "KES 100.00" in out and "claim one with: mapokezi numbers claim ID" in out
    inventory_id = next(n["id"] for n in available if n["number"] == NUMBER)
    code, out, _ = run(capsys, "numbers", "claim", inventory_id)
    assert code == 0 and out.startswith(f"claimed {NUMBER} (number id ")
    claim = sautikit.requests[-1]
    assert (claim.method, claim.path, claim.json()) == (
        "POST",
        "/v1/numbers",
        {"inventory_id": inventory_id},
    )
    number_id = sautikit.numbers[0]["id"]
    code, out, _ = run(
        capsys,
        "numbers",
        "route",
        number_id,
        "--url",
        "https://api.example.test/voice",
        "--events-url",
        "https://api.example.test/events",
    )
    assert code == 0 and out.startswith(f"routed {NUMBER} to https://api.example.test/voice")
    route = sautikit.requests[-1]
    assert (route.method, route.path) == ("PATCH", f"/v1/numbers/{number_id}")
    assert route.json() == {
        "routing_url": "https://api.example.test/voice",
        "events_url": "https://api.example.test/events",
    }
    code, out, _ = run(capsys, "numbers", "list")
    assert code == 0 and "https://api.example.test/voice" in out


def test_numbers_alternative_paths_from_env(
    sautikit: SautikitApiDouble, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAUTIKIT_CLAIM_PATH", "/v1/numbers/{id}/claim")
    monkeypatch.setenv("SAUTIKIT_ROUTE_PATH", "/v1/numbers/{id}/routing")
    monkeypatch.setenv("SAUTIKIT_ROUTE_METHOD", "PUT")
    monkeypatch.setenv("SAUTIKIT_ROUTE_FIELD", "voice_callback_url")
    code, out, _ = run(capsys, "numbers", "claim", "--json")
    inventory_id = json.loads(out)[0]["id"]
    code, out, _ = run(capsys, "numbers", "claim", inventory_id, "--json")
    number_id = json.loads(out)["id"]
    assert code == 0 and sautikit.requests[-1].path == f"/v1/numbers/{inventory_id}/claim"
    code, _, _ = run(capsys, "numbers", "route", number_id, "--url", "https://x.test/voice")
    route = sautikit.requests[-1]
    assert code == 0 and (route.method, route.path) == ("PUT", f"/v1/numbers/{number_id}/routing")
    assert route.json() == {"voice_callback_url": "https://x.test/voice"}
    assert sautikit.numbers[0]["voice_callback_url"] == "https://x.test/voice"


def test_numbers_errors_are_clear(
    sautikit: SautikitApiDouble, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "numbers", "claim", "--json")
    ids = [n["id"] for n in json.loads(out)]
    assert run(capsys, "numbers", "claim", ids[0])[0] == 0  # balance 150.00 → 50.00 left
    code, _, err = run(capsys, "numbers", "claim", ids[1])
    assert code == 1
    assert err == (
        "error: Sautikit API: HTTP 402 wallet.insufficient_funds: insufficient wallet balance\n"
    )
    code, _, err = run(capsys, "numbers", "route", "nope", "--url", "https://x.test/voice")
    assert code == 1 and "HTTP 404 numbers.not_found" in err
    code, _, err = run(capsys, "numbers", "route", "nope", "--url", "ftp://x.test/voice")
    assert code == 2 and err == "error: --url: 'ftp://x.test/voice' must be an http(s) URL\n"
    monkeypatch.delenv("SAUTIKIT_API_KEY")
    code, _, err = run(capsys, "numbers", "list")
    assert code == 1 and "SAUTIKIT_API_KEY is not configured" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["numbers", "route", "abc"])
    assert exc.value.code == 2
    assert "--url" in capsys.readouterr().err
