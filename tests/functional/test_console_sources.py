"""The console's data and the CLI's additions against real DynamoDB calls (moto) and the
Sautikit API double: deleting a call, recordings, profile text, ``--local`` settings."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble, ScriptedResponse
from local import running
from local.stack import LocalStack, StackConfig
from mapokezi import handoff, keys, store
from mapokezi.profiles import ProfileError, load_profile_text, parse_profile
from mapokezi.sautikit_api import SautikitApiError, SautikitClient
from mapokezi_cli.console.sources import CallQuery, TableSource, recent_calls
from mapokezi_cli.main import main


def _call(table: Any, call_id: str, **attributes: Any) -> None:
    store.create_call(
        table,
        call_id=call_id,
        caller="+254711000001",
        to="+254700000100",
        retention_days=1,
        attributes=attributes,
    )


def test_calls_delete_removes_every_item_of_the_call(
    calls_table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _call(calls_table, "gone", session_id="HD_gone")
    _call(calls_table, "kept")
    store.add_turns(calls_table, "gone", [{"role": "caller", "text": "hi", "at_ms": 5}], 1)
    store.record_event(
        calls_table, "gone", source="voice", dedupe_key="k", payload={"a": 1}, retention_days=1
    )
    out = io.StringIO()
    assert main(["calls", "delete", "gone", "--json"], out=out) == 0
    assert json.loads(out.getvalue()) == {"call_id": "gone", "deleted_items": 3}
    assert store.call_record(calls_table, "gone") is None
    assert "Item" not in calls_table.get_item(Key=keys.session_alias_key("HD_gone"))
    assert store.call_record(calls_table, "kept") is not None
    assert main(["calls", "delete", "gone"], out=io.StringIO()) == 1
    assert "not found" in capsys.readouterr().err


def test_table_source_lists_profiles_and_follows_cursors(calls_table: Any) -> None:
    for i in range(7):
        _call(calls_table, f"c{i}")
    store.put_profile(
        calls_table,
        parse_profile(
            {
                "business_name": "Duka",
                "greeting": "Hi",
                "instructions": "x",
                "front_desk": "+254711000009",
            },
            number="+254700000100",
        ),
    )
    source = TableSource(calls_table, "test")
    calls = recent_calls(source, CallQuery({"limit": 2}, {}))
    assert len(calls) == 7
    [entry] = source.profiles()
    assert entry["profile"].business_name == "Duka"
    assert entry["platform"] is None
    store.learn_platform_behaviour(
        calls_table, "+254700000100", handoff.LEARNED_NO_REPOST, call_id="c1"
    )
    [entry] = source.profiles()
    assert entry["platform"]["after_stream"] == handoff.LEARNED_NO_REPOST


def test_profile_text_is_read_as_the_cli_reads_files() -> None:
    assert load_profile_text("a: 1\n", "p.yml") == {"a": 1}
    assert load_profile_text('{"a": 1}', "p.json") == {"a": 1}
    with pytest.raises(ProfileError, match=r"p.json: not valid JSON"):
        load_profile_text("a: 1", "p.json")
    with pytest.raises(ProfileError, match="top level must be a mapping"):
        load_profile_text("- 1\n", "p.yaml")


def test_disclosure_is_an_optional_checked_line_spoken_with_the_greeting() -> None:
    from media_node.prompts import greeting_instructions

    fields = {
        "business_name": "Duka",
        "greeting": "Hello!",
        "instructions": "x",
        "front_desk": "+254711000009",
    }
    plain = parse_profile(fields, number="+254700000100")
    assert plain.disclosure is None
    told = parse_profile({**fields, "disclosure": "This call is recorded."}, number="+254700000100")
    assert 'saying exactly: "Hello! This call is recorded."' in greeting_instructions(told)
    with pytest.raises(ProfileError, match="disclosure: must be at most 300 characters"):
        parse_profile({**fields, "disclosure": "x" * 301}, number="+254700000100")


def test_recording_lookup_ready_pending_and_missing() -> None:
    with SautikitApiDouble() as api:
        api.register_call(call_id="rec-1", session_id="HD_rec1")
        client = SautikitClient(api.url, DEFAULT_API_KEY)
        with pytest.raises(SautikitApiError) as missing:
            client.get_recording("rec-1")
        assert missing.value.status == 404
        api.recordings["rec-1"] = b"RIFF....WAVE"
        found = client.get_recording("HD_rec1")
        assert found["state"] == "ready"
        assert found["url"].startswith(f"{api.url}/_double/recordings/rec-1")
        assert not any(
            r.path.startswith("/_double/recordings") for r in api.requests
        )  # the redirect was not followed with the key
        api.script(ScriptedResponse.pending(3), call_id="rec-1")
        assert client.get_recording("rec-1") == {"state": "pending", "retry_after_seconds": 3.0}


def test_running_stack_settings_reach_make_call_and_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "local-stack.json"
    stack = LocalStack(StackConfig(gateway_port=3100, moto_port=5100, console_port=8100))
    running.write(stack.settings(), state)
    monkeypatch.setattr(running, "STATE_FILE", state)
    monkeypatch.delenv("GATEWAY_PORT", raising=False)
    assert running.setting("GATEWAY_PORT") == "3100"
    monkeypatch.setenv("GATEWAY_PORT", "3200")  # this process's own setting wins
    assert running.setting("GATEWAY_PORT") == "3200"
    assert stack.call_command() == "GATEWAY_PORT=3100 MOTO_PORT=5100 CONSOLE_PORT=8100 make call"
    assert LocalStack(StackConfig()).call_command() == "make call"


def _console_args(*argv: str) -> Any:
    from mapokezi_cli.main import build_parser

    return build_parser().parse_args(["console", *argv])


def test_console_reads_the_table_or_the_api_and_calls_the_matching_webhook(
    calls_table: Any,
) -> None:
    from mapokezi_cli.console import settings_from_args
    from mapokezi_cli.console.sources import ApiSource

    api = settings_from_args(
        _console_args("--api", "https://x.example/prod/", "--price", "audio_out=10")
    )
    assert isinstance(api.source, ApiSource)
    assert api.talk is not None and api.talk.voice_url == "https://x.example/prod/voice"
    assert api.prices.audio_out == 10.0
    table = settings_from_args(_console_args())
    assert isinstance(table.source, TableSource) and table.talk is None
    with pytest.raises(ValueError, match="use NAME=VALUE"):
        settings_from_args(_console_args("--price", "audio_out"))


def test_console_listens_on_loopback_unless_told_otherwise() -> None:
    args = _console_args()
    assert args.port == 8099 and not args.listen_anywhere


def test_sautikit_lookup_says_how_the_platform_has_each_number() -> None:
    from mapokezi_cli.console.app import _platform_view
    from mapokezi_cli.console.platform import SautikitLookup

    with SautikitApiDouble() as api:
        lookup = SautikitLookup(SautikitClient(api.url, DEFAULT_API_KEY))
        assert lookup.recording("nobody") == {
            "state": "none",
            "reason": "Sautikit has no recording of this call.",
        }
        client = SautikitClient(api.url, DEFAULT_API_KEY)
        inventory = client.list_available()[0]
        claimed = client.claim_number(inventory.get("id") or inventory["inventory_id"])
        e164 = claimed.get("number") or claimed["e164"]
        client.route_number(claimed["id"], "https://api.example/voice")
        platform = lookup.numbers()
        assert "https://api.example/voice" in str(_platform_view(platform, e164))
        assert _platform_view(platform, "+254799999999") == (
            "not a number of this Sautikit workspace"
        )
    broken = SautikitLookup(SautikitClient("http://127.0.0.1:9", DEFAULT_API_KEY, timeout=2))
    assert "did not answer" in str(_platform_view(broken.numbers(), e164))
    assert _platform_view({}, e164) is None
