"""The console's pages in a real browser against the local stack: no console errors, escaped
call data, filters, pagination and profile upload errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.support import SEED_CALLS, SEED_NUMBER, console_url

PAGES = ["/calls", "/calls/seed-007", "/messages", "/numbers", "/overview", "/talk"]


def test_every_page_loads_without_console_errors(stack: Any, page: Any) -> None:
    cfg, _ = stack
    tab, log = page
    for path in PAGES:
        response = tab.goto(console_url(cfg) + path)
        assert response.status == 200, path
        tab.wait_for_load_state("networkidle")
        assert tab.locator("h1").count() == 1, path
    assert log.errors == []


def test_call_data_is_shown_as_text_never_as_markup(stack: Any, page: Any) -> None:
    cfg, _ = stack
    tab, log = page
    tab.goto(console_url(cfg) + "/calls/seed-007")
    transcript = tab.locator("#transcript")
    assert "<img src=x onerror=alert(2)> hello" in transcript.inner_text()
    assert tab.locator("#transcript img").count() == 0
    assert "interrupted by the caller" in transcript.inner_text()
    assert "generated: Hello, how can I help you today?" in transcript.inner_text()
    assert tab.locator("svg.timeline rect.span-caller").count() == 1
    assert tab.locator("svg.timeline line.barge-in").count() == 1
    assert "Wanjiru <b>K</b>" in tab.locator("body").inner_text()  # the message, as text
    assert log.errors == []


def test_messages_link_shows_when_a_call_has_a_message(stack: Any, page: Any) -> None:
    cfg, _ = stack
    tab, _log = page
    tab.goto(console_url(cfg) + "/messages")
    assert tab.locator("header a", has_text="Messages").count() == 1
    rows = tab.locator("table.messages tbody tr")
    assert rows.count() == 1
    assert "Please call back about the delivery" in rows.first.inner_text()


def test_filters_and_pagination(stack: Any, page: Any) -> None:
    cfg, _ = stack
    tab, log = page
    tab.goto(console_url(cfg) + "/calls")
    tab.fill("input[name=number]", SEED_NUMBER)
    tab.click("form.filters button[type=submit]")
    first = tab.locator("table.calls tbody tr")
    assert first.count() == 25
    assert "+254711000029" in first.first.inner_text()  # newest first
    tab.click("#next-page")
    rest = tab.locator("table.calls tbody tr")
    assert rest.count() == SEED_CALLS - 25
    assert "+254711000000" in rest.last.inner_text()
    assert tab.locator("#next-page").count() == 0
    tab.click("#first-page")
    assert tab.locator("table.calls tbody tr").count() == 25

    tab.goto(console_url(cfg) + "/calls")
    tab.fill("input[name=caller]", "+254711000013")
    tab.click("form.filters button[type=submit]")
    rows = tab.locator("table.calls tbody tr")
    assert rows.count() == 1 and "+254711000013" in rows.first.inner_text()

    tab.goto(console_url(cfg) + "/calls")
    tab.fill("input[name=number]", SEED_NUMBER)
    tab.select_option("select[name=outcome]", "transferred")
    tab.click("form.filters button[type=submit]")
    badges = tab.locator("table.calls .badge")
    assert badges.count() == 5  # every fifth of the newest 25 (29..5): 25, 20, 15, 10, 5
    assert set(badges.all_inner_texts()) == {"transferred and connected"}

    tab.goto(console_url(cfg) + "/calls")
    tab.fill("input[name=since]", "2026-11-18T12:00:00Z")
    tab.fill("input[name=until]", "2026-11-18T14:59:59Z")
    tab.fill("input[name=number]", SEED_NUMBER)
    tab.click("form.filters button[type=submit]")
    assert tab.locator("table.calls tbody tr").count() == 3

    tab.goto(console_url(cfg) + "/calls")
    tab.fill("input[name=caller]", "not a number")
    tab.click("form.filters button[type=submit]")
    assert "is not an E.164 number" in tab.locator("#filter-error").inner_text()
    assert [e for e in log.errors if "400" not in e] == []


def test_profile_upload_shows_the_exact_field_errors(stack: Any, page: Any, tmp_path: Path) -> None:
    cfg, _ = stack
    tab, _log = page
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "business_name: Duka\ngreeting: Hello\ninstructions: Be kind\nfront_desk: 0712\n"
        "colour: blue\n",
        encoding="utf-8",
    )
    tab.goto(console_url(cfg) + "/numbers")
    tab.fill("#upload input[name=number]", "+254700000777")
    tab.set_input_files("#upload input[name=file]", str(bad))
    tab.click("#upload button[type=submit]")
    errors = tab.locator("#upload-errors li").all_inner_texts()
    assert errors == [
        "colour: unknown field",
        "front_desk: must be an E.164 number like +254712345678",
    ]

    good = tmp_path / "good.yaml"
    good.write_text(
        "business_name: Duka <Bora>\ngreeting: Hello\ninstructions: Be kind\n"
        "front_desk: '+254712345678'\ndisclosure: This call is recorded.\n",
        encoding="utf-8",
    )
    tab.fill("#upload input[name=number]", "+254700000777")
    tab.set_input_files("#upload input[name=file]", str(good))
    tab.click("#upload button[type=submit]")
    assert "+254700000777" in tab.locator("#upload-ok").inner_text()
    card = tab.locator(".number", has_text="Duka <Bora>")
    assert "This call is recorded." in card.inner_text()


def test_the_cli_reaches_the_local_stack_with_local_and_nothing_else(
    stack: Any, monkeypatch: Any
) -> None:
    import io
    import json
    import os

    from mapokezi_cli.main import main

    cfg, _ = stack
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "CALLS_TABLE",
        "SAUTIKIT_API_URL",
        "SAUTIKIT_API_KEY",
    ):
        # Recorded so the test leaves the environment as it found it, then left to --local.
        monkeypatch.setenv(name, os.environ.get(name, "unset"))
        monkeypatch.delenv(name)
    monkeypatch.setenv("MOTO_PORT", str(cfg.moto_port))  # what `make run` records
    monkeypatch.setenv("SAUTIKIT_DOUBLE_PORT", str(cfg.sautikit_double_port))
    out = io.StringIO()
    assert main(["--local", "calls", "list", "--number", SEED_NUMBER, "--json"], out=out) == 0
    assert len(json.loads(out.getvalue())["calls"]) == 25
    out = io.StringIO()
    assert main(["--local", "numbers", "list", "--json"], out=out) == 0
    assert isinstance(json.loads(out.getvalue()), list)
