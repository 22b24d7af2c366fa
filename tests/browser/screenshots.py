"""Screenshots of the console for the README: ``python -m tests.browser.screenshots``.

Starts the local stack, stores the seeded calls, places one emulated call (``make call``'s
script against the offline model) so a real transcript and timeline are shown, and writes
``docs/screenshots/*.png`` with Debian's Chromium; the talk page is shown after a call placed
from it with a WAV file as the microphone.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from local.emulator import CallOptions, run_call
from local.stack import ROOT
from tests.browser.conftest import launch
from tests.browser.support import (
    WEBHOOK_SECRET,
    caller_wav,
    chromium_missing_reason,
    console_url,
    running_stack,
    seed_calls,
)

OUT = ROOT / "docs" / "screenshots"


def main() -> int:
    """Write the screenshots; 1 when Chromium is missing or the call failed."""
    reason = chromium_missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with running_stack() as (cfg, table):
        seed_calls(table)
        options = CallOptions(
            voice_url=f"http://{cfg.host}:{cfg.gateway_port}/voice",
            to_number=cfg.demo_number,
            sautikit_api_url=f"http://{cfg.host}:{cfg.sautikit_double_port}",
            call_record_url=f"http://{cfg.host}:{cfg.gateway_port}",
            webhook_secret=WEBHOOK_SECRET,
        )
        result = asyncio.run(run_call(options))
        if not result.ok:
            print(f"the emulated call failed: {result.errors}", file=sys.stderr)
            return 1
        shots = {
            "calls": "/calls",
            "call": f"/calls/{result.call.call_id}",
            "overview": "/overview?days=30",
            "numbers": "/numbers",
        }
        with sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
            browser = launch(driver, Path(profile))
            tab = browser.new_page()
            for name, path in shots.items():
                tab.goto(console_url(cfg) + path)
                tab.wait_for_load_state("networkidle")
                tab.screenshot(path=str(OUT / f"{name}.png"), full_page=name != "calls")
                print(OUT / f"{name}.png")
            browser.close()
            wav = caller_wav(Path(profile) / "caller.wav")
            flags = [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
            ]
            talker = launch(driver, Path(profile) / "talk", flags)
            tab = talker.new_page()
            tab.goto(console_url(cfg) + "/talk")
            tab.click("#call")
            expect(tab.locator("#state")).to_have_text("ended", timeout=120_000)
            tab.screenshot(path=str(OUT / "talk.png"))
            print(OUT / "talk.png")
            talker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
