"""The emulator's dealings with the Sautikit API double and the project's call record: the call's
CDR, an event the platform posts about it, and the call record read back after the call.

The emulator only writes to an API that proves it is the double (``GET /_double/ping``), so a
``SAUTIKIT_API_URL`` pointing at the real Sautikit is never sent invented calls.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from local.emulator.webhook import CallIdentity, request_json

#: The kind of the stream-stopped event on the events URL: Sautikit documents none, so this name
#: is an assumption (the events function recognises any kind ending in "stopped").
STREAM_STOPPED_EVENT = "call.stream.stopped"


async def register_with_api_double(
    base: str | None, call: CallIdentity, started_at: str
) -> tuple[str | None, str | None]:
    """Create the call's CDR in the API double.

    Returns:
        ``(double_url, warning)``: the double's base URL when the call was registered (None
        when ``base`` is unset or is not the double), and a warning when registration failed.
    """
    base = (base or "").rstrip("/")
    if not base:
        return None, None
    status, body = await request_json("GET", f"{base}/_double/ping")
    if status != 200 or not isinstance(body, dict) or body.get("double") != "sautikit":
        return None, None
    registration = {
        "call_id": call.call_id,
        "session_id": call.session_id,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "started_at": started_at,
    }
    status, body = await request_json("POST", f"{base}/_double/calls", registration)
    if status != 201:
        return None, f"API double registration failed: {status} {body}"
    return base, None


async def complete_with_api_double(
    base: str,
    call: CallIdentity,
    duration_seconds: int,
    answered_at: str | None,
    dialled: list[dict[str, Any]],
) -> str | None:
    """Complete the call in the API double; returns a warning on failure."""
    completion = {
        "duration_seconds": duration_seconds,
        "answered_at": answered_at,
        "status": "completed" if answered_at else "no_answer",
        "dialled": dialled,
    }
    status, body = await request_json(
        "POST", f"{base}/_double/calls/{call.call_id}/complete", completion
    )
    return None if status == 200 else f"API double completion failed: {status} {body}"


async def fetch_call_record(
    base: str, call: CallIdentity, wait_seconds: float
) -> tuple[dict[str, Any] | None, list[str]]:
    """``GET {base}/calls/{id}`` (UUID, then ``HD_…``), polling until the CDR carries a cost.

    Returns:
        ``(record, warnings)``.
    """
    base = base.rstrip("/")
    deadline = time.monotonic() + wait_seconds
    ids = [call.call_id, call.session_id]
    record: dict[str, Any] | None = None
    while True:
        for ident in ids:
            status, body = await request_json("GET", f"{base}/calls/{ident}")
            if status == 200 and isinstance(body, dict):
                record, ids = body, [ident]
                break
        if record is None:
            break  # the webhook created the record long ago: it is not coming
        cdr = record.get("cdr") or {}
        if cdr.get("cost_minor") is not None or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    if record is None:
        return None, [f"no call record at {base}/calls/{call.call_id}"]
    if not (record.get("cdr") or {}).get("status"):
        return record, ["the call record has no CDR yet"]
    return record, []


async def post_stream_stopped_event(
    api: str, call: CallIdentity, stream_sid: str
) -> tuple[dict[str, Any] | None, str | None]:
    """Have the double post the stream's stop to the events URL, signed like its own events (the
    field saw ``StreamStopped`` there). Returns ``({"kind", "event_id"}, None)`` or
    ``(None, warning)``."""
    body = {
        "kind": STREAM_STOPPED_EVENT,
        "data": {"callSessionState": "StreamStopped", "streamSid": stream_sid},
    }
    url = f"{api}/_double/calls/{call.call_id}/events"
    status, reply = await request_json("POST", url, body)
    if status != 202 or not isinstance(reply, dict):
        return None, f"the stream-stopped event failed: {status} {reply}"
    return {"kind": STREAM_STOPPED_EVENT, "event_id": reply.get("event_id")}, None
