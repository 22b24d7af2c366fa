"""The talk page places a real call: a WAV as the microphone, the local stack's offline model."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import PageErrors, launch
from tests.browser.support import caller_wav, console_url

CALL_TIMEOUT_MS = 120_000


def test_a_call_from_the_microphone_lands_in_the_calls_list(
    stack: Any, playwright: Any, tmp_path: Path
) -> None:
    cfg, _ = stack
    wav = caller_wav(tmp_path / "caller.wav")
    context = launch(
        playwright,
        tmp_path / "profile",
        [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ],
    )
    try:
        tab = context.new_page()
        log = PageErrors(tab)
        tab.goto(console_url(cfg) + "/talk")
        tab.click("#call")
        expect(tab.locator("#state")).to_have_text("connected", timeout=CALL_TIMEOUT_MS)
        # The offline model greets, answers the question and transfers on the second request;
        # the platform then dials the front desk and the call ends by itself.
        expect(tab.locator("#state")).to_have_text("ended", timeout=CALL_TIMEOUT_MS)
        entries = tab.locator("#log li").all_inner_texts()
        assert not [e for e in entries if e.startswith("error:")], entries
        assert int(tab.locator("#sent").inner_text()) > 100  # > 2 s of microphone audio
        assert int(tab.locator("#heard").inner_text()) > 32000  # > 1 s of receptionist audio
        call_href = tab.locator("#call-link").get_attribute("href")
        call_id = call_href.rsplit("/", 1)[1]

        tab.goto(console_url(cfg) + "/calls")
        assert tab.locator(f"a.call-link[href='/calls/{call_id}']").count() == 1
        tab.click(f"a.call-link[href='/calls/{call_id}']")
        transcript = tab.locator("#transcript").inner_text()
        assert "offline test model" in transcript  # the greeting, as the caller heard it
        assert "caller speech" in transcript  # the caller's turns (the model cannot transcribe)
        assert tab.locator("svg.timeline rect.span-receptionist").count() >= 2
        assert tab.locator("svg.timeline rect.span-caller").count() >= 1
        assert tab.locator("svg.timeline circle.handoff-point").count() >= 1
        # The line was recorded (by the Sautikit double here) and plays in the page.
        src = tab.locator("audio#recording").get_attribute("src")
        assert src and f"/_double/recordings/{call_id}" in src
        with urllib.request.urlopen(src, timeout=10) as response:
            wav = response.read()
        assert wav[:4] == b"RIFF" and len(wav) > 16000 * 2 * 5  # both sides, > 5 s
        assert log.errors == []
    finally:
        context.close()
