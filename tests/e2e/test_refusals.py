"""What the stack refuses, and what it does when the media node is gone.

A webhook with a bad or missing signature gets 401 and leaves no trace; a media socket with a
forged, expired, garbled or already used token is refused before the upgrade and never reaches
the model; with no live media node the caller hears the fallback line and goes to the front desk.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from doubles.openai_realtime import Script
from local.emulator import MediaLeg
from local.emulator.script import Hangup, WaitReply
from mapokezi import config, store, tokens
from tests.e2e.harness import (
    E2E,
    FALLBACK_LINE,
    FRONT_DESK,
    HEARTBEAT_MAX_AGE_SECONDS,
    labels,
    scenario,
    verbs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

GREETING = "Karibu, how can I help?"
SIGNED = scenario("signature", greeting=GREETING, script=Script())
TOKENS = scenario("tokens", greeting=GREETING, script=Script())
NO_NODE = scenario("nonode", greeting=GREETING, script=Script())


def sessions_of(e2e: E2E, business_name: str) -> int:
    return sum(1 for s in e2e.double.sessions if e2e.model.business_of(s) == business_name)


@pytest.mark.parametrize("secret", ["not-the-webhook-secret", None], ids=["wrong", "unsigned"])
async def test_bad_webhook_signature_is_refused(e2e: E2E, secret: str | None) -> None:
    result = await e2e.call(SIGNED, [], webhook_secret=secret, record_wait_seconds=0.0)

    # Every POST the platform made was refused, so nothing ran.
    assert labels(result) == ["initial", "Completed"]
    assert [x.status for x in result.exchanges] == [401, 401]
    assert result.media is None and verbs(result) == []
    # No call was recorded, no model session opened.
    assert result.call_record is None
    assert any("no call record" in w for w in result.warnings)
    assert sessions_of(e2e, SIGNED.business_name) == 0


async def test_bad_media_tokens_are_refused_before_the_upgrade(e2e: E2E) -> None:
    # A real call, so there is a real token to tamper with and to reuse.
    call = await e2e.call(TOKENS, [WaitReply(0.6), Hangup()])
    assert call.ok, call.errors
    assert call.stream is not None and call.media is not None and call.media.connected
    used_url = call.stream.url
    real_token = parse_qs(urlsplit(used_url).query)["token"][0]
    secret = e2e.info.env["STREAM_TOKEN_SECRET"]
    call_id = call.call.call_id
    media_url = used_url.split("?", 1)[0]

    forged, _ = tokens.mint_stream_token("not-the-secret", call_id, TOKENS.number)
    expired, _ = tokens.mint_stream_token(secret, call_id, TOKENS.number, now=time.time() - 3600)
    payload, signature = real_token.rsplit(".", 1)
    tampered = f"{payload}.{'0' * len(signature)}"
    attempts = {
        "reused": (used_url, 403),
        "forged": (f"{media_url}?token={forged}", 401),
        "expired": (f"{media_url}?token={expired}", 401),
        "tampered": (f"{media_url}?token={tampered}", 401),
        "garbage": (f"{media_url}?token=not-a-token", 401),
        "missing": (media_url, 401),
    }
    sessions_before = len(e2e.double.sessions)
    results = await asyncio.gather(
        *(MediaLeg(url, max_seconds=5.0).run() for url, _ in attempts.values())
    )
    for (name, (_, status)), leg in zip(attempts.items(), results, strict=True):
        assert not leg.connected, name
        assert leg.error == f"server refused the upgrade: HTTP {status}", (name, leg.error)
    # None of them reached the model.
    assert len(e2e.double.sessions) == sessions_before


async def healthy_nodes() -> list[dict[str, object]]:
    table = config.dynamodb_table(config.Settings.from_env().calls_table)
    return await asyncio.to_thread(store.healthy_nodes, table, HEARTBEAT_MAX_AGE_SECONDS)


async def wait_for_nodes(present: bool, limit: float = 20.0) -> None:
    async with asyncio.timeout(limit):
        while bool(await healthy_nodes()) != present:  # noqa: ASYNC110 - a table, no event
            await asyncio.sleep(0.25)


async def test_no_media_node_says_the_fallback_and_dials_the_front_desk(e2e: E2E) -> None:
    await asyncio.to_thread(e2e.stack.request, "crash_media_node")
    try:
        # A crashed node writes nothing more; its heartbeat goes stale.
        await wait_for_nodes(present=False)
        result = await e2e.call(NO_NODE, [])
    finally:
        await asyncio.to_thread(e2e.stack.request, "start_media_node")
        await wait_for_nodes(present=True)

    assert result.ok, result.errors
    assert result.stream is None and result.media is None
    assert verbs(result) == ["Say", "Dial"]
    assert result.verbs[0]["detail"] == FALLBACK_LINE
    assert result.handoff is not None and result.handoff["number"] == FRONT_DESK
    assert labels(result) == ["initial", "DialCompleted", "Completed"]
    assert sessions_of(e2e, NO_NODE.business_name) == 0

    record = result.call_record
    assert record is not None
    assert record["status"] == "ended"
    assert record.get("media") is None and record.get("handoff") is None
    assert record["transcript"] == []
    assert record["cdr"]["fetch_state"] == "done" and record["cdr"]["cost_minor"] > 0
