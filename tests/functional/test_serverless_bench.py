"""The serverless bench's cold starts: every handler imported and served as Lambda would.

One sample per variant, in this interpreter (the bench's default), against its moto server:
the figures themselves are the bench's business; here every scripted first request must succeed,
the X-Ray SDK must load only where asked, and the summary must carry what the report prints.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from bench import serverless


@pytest.fixture(scope="module")
def cold() -> dict[str, Any]:
    with serverless.moto_stack() as stack:
        return serverless.cold_starts(stack, repeats=1)


def test_every_handler_imports_and_serves_its_first_request(cold: dict[str, Any]) -> None:
    handlers = set(serverless.handler_modules())
    assert handlers <= set(cold)
    for label, row in cold.items():
        assert "error" not in row, (label, row)
        assert row["import_cpu_ms"]["n"] == 1
    served = {"voice.app", "stream_status.app", "events.app", "calls_api.app"}
    for module in served:
        assert cold[module]["first_status"] == ["200"], module
        assert cold[module]["cold_request_cpu_ms"]["p50"] > cold[module]["import_cpu_ms"]["p50"]
    for module in handlers - served:
        assert "first_cpu_ms" not in cold[module]


def test_only_trace_detail_loads_the_xray_sdk(cold: dict[str, Any]) -> None:
    assert cold["voice.app, TRACE_DETAIL=true"]["xray_sdk_loaded"] is True
    assert cold["voice.app, TRACE_DETAIL=true"]["first_status"] == ["200"]
    others = [row for label, row in cold.items() if "TRACE_DETAIL" not in label]
    assert others and not any(row["xray_sdk_loaded"] for row in others)


def test_the_table_prints_every_variant(
    cold: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    serverless.print_table({"cold_ms": cold, "warm": {}, "import_goal_ms": 200.0})
    printed = capsys.readouterr().out
    for label in cold:
        assert label in printed
    assert "import goal" in printed


def test_handlers_are_measured_with_checked_hash_bytecode_and_without_any() -> None:
    with (
        serverless.deployed_functions(sys.executable) as deployed,
        serverless.deployed_functions(None) as sources,
    ):
        compiled = list(deployed.rglob("*.pyc"))
        assert not list(sources.rglob("*.pyc"))
        assert {p.parent.parent.name for p in compiled} >= {"voice", "serverless", "mapokezi"}
        for path in compiled:
            # PEP 552: flags word after the magic number; 0b11 = hash-based, source checked.
            assert int.from_bytes(path.read_bytes()[4:8], "little") == 0b11, path
