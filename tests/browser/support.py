"""Shared by the browser tests and the screenshot script: the stack, seeded calls, Chromium.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``); Playwright drives it
and never downloads a browser of its own.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from local.stack import ROOT, StackConfig
from mapokezi import store
from tests.e2e.stack_process import StackProcess

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CALLER_AUDIO = ROOT / "local" / "audio" / "caller"
SEED_NUMBER = "+254700000555"
SEED_CALLS = 30
WEBHOOK_SECRET = "browser-tests-webhook-secret"


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None (in CI a missing Chromium is a failure)."""
    if CHROMIUM.exists():
        return None
    reason = f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    return reason


@contextmanager
def running_stack() -> Iterator[tuple[StackConfig, Any]]:
    """The local stack (console included) in a process of its own, and its calls table."""
    # Signed webhooks, as on a deployed stack: the talk page's calls must sign theirs.
    cfg = StackConfig.ephemeral(webhook_secret=WEBHOOK_SECRET)
    stack = StackProcess(cfg)
    stack.start()
    try:
        table = boto3.resource(
            "dynamodb",
            endpoint_url=f"http://{cfg.host}:{cfg.moto_port}",
            region_name="af-south-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        ).Table(cfg.table_name)
        yield cfg, table
    finally:
        stack.stop()


def console_url(cfg: StackConfig) -> str:
    """The stack's console."""
    return f"http://{cfg.host}:{cfg.console_port}"


def seed_calls(table: Any, count: int = SEED_CALLS) -> list[str]:
    """``count`` finished calls to ``SEED_NUMBER``, an hour apart, with varied outcomes.

    Call ``i`` comes from ``+2547110000{i:02d}``; every fifth was transferred, the seventh
    carries a message, and caller ids hold markup, which the pages must show as text.
    """
    base = 1_795_000_000.0  # 2026-11-18
    ids = []
    for i in range(count):
        call_id = f"seed-{i:03d}"
        attributes: dict[str, Any] = {"note": "<script>alert(1)</script>"}
        if i % 5 == 0:
            attributes["handoff"] = {
                "kind": "transfer",
                "target": "+254700000999",
                "state": "dialled",
                "path": "dial",
                "reason": "asked for sales",
                "requested_at": store.now_iso(base + i * 3600 + 20),
                "dialled_at": store.now_iso(base + i * 3600 + 24),
            }
        if i == 7:
            attributes["message"] = {
                "name": "Wanjiru <b>K</b>",
                "callback_number": "+254711000007",
                "message": "Please call back about the delivery",
                "urgency": "high",
                "state": "open",
            }
        store.create_call(
            table,
            call_id=call_id,
            caller=f"+2547110000{i:02d}",
            to=SEED_NUMBER,
            retention_days=30,
            attributes=attributes,
            at=base + i * 3600,
        )
        store.mark_ended(table, call_id, reason="completed", duration_seconds=30 + i)
        store.put_metrics(
            table,
            call_id,
            {
                "time_to_first_audio_ms": 700.0 + 10 * i,
                "reply_latency_ms": [650.0 + i, 720.0],
                "barge_ins": 1,
                "usage": {"input_audio_tokens": 900, "output_audio_tokens": 1500},
            },
        )
        store.record_cdr(
            table,
            call_id,
            {
                "status": "completed",
                "duration_seconds": 30 + i,
                "cost_minor": 300 + i,
                "cost_currency": "KES",
            },
        )
        store.add_turns(
            table,
            call_id,
            [
                {"role": "caller", "text": "<img src=x onerror=alert(2)> hello", "at_ms": 3000},
                {
                    "role": "agent",
                    "text": "Hello, how can I",
                    "at_ms": 500,
                    "generated_text": "Hello, how can I help you today?",
                    "heard_text": "Hello, how can I",
                    "interrupted": True,
                    "generated_ms": 2500,
                    "heard_ms": 1400,
                },
            ],
            retention_days=30,
        )
        ids.append(call_id)
    return ids


def caller_wav(path: Path) -> Path:
    """A fake microphone: silence, a question, silence, a request for a person, silence.

    Chromium loops it; the offline model greets, answers the first turn and transfers on the
    next, so a call placed with it ends by itself.
    """
    parts = [np.zeros(16000 * 4, dtype="<i2")]
    for name in ("hello_saturday.wav", "sales.wav"):
        with wave.open(str(CALLER_AUDIO / name), "rb") as source:
            assert source.getframerate() == 16000 and source.getnchannels() == 1
            parts.append(np.frombuffer(source.readframes(source.getnframes()), dtype="<i2"))
        parts.append(np.zeros(16000 * 5, dtype="<i2"))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.concatenate(parts).tobytes())
    return path
