"""Bodies of the ``<Stream statusCallback>`` POSTs.

Sautikit documents only the event names (``stream-started``, ``stream-stopped``,
``stream-error``) and that the stream ``name`` is echoed.
The default ``telnyx`` dialect uses the Telnyx TeXML field names the attribute naming mirrors
(``StreamEvent``, ``StreamName``, ``StreamSid``, ``CallSid``, ``Timestamp``, ``StreamError``);
the ``field`` dialect uses what a production integrator checked for on Sautikit
(``callSessionState`` ``StreamStarted``/``StreamStopped``/``StreamError``, ``sessionId``,
``streamSid``, ``streamEvent``). Both are guesses; the dialect is selectable.
"""

from __future__ import annotations

from datetime import UTC, datetime

from local.emulator.webhook import CallIdentity

STATUS_DIALECTS = ("telnyx", "field")
_STATES = {
    "stream-started": "StreamStarted",
    "stream-stopped": "StreamStopped",
    "stream-error": "StreamError",
}


def status_fields(
    event: str,
    call: CallIdentity,
    stream_sid: str,
    name: str | None,
    dialect: str = "telnyx",
    error: str | None = None,
) -> dict[str, str]:
    """The status-callback body for ``event`` in ``dialect``."""
    if event not in _STATES:
        raise ValueError(f"unknown stream event {event!r}")
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if dialect == "telnyx":
        fields = {
            "StreamEvent": event,
            "StreamSid": stream_sid,
            "CallSid": call.call_id,
            "Timestamp": timestamp,
        }
        if name:
            fields["StreamName"] = name
        if error:
            fields["StreamError"] = error
        return fields
    if dialect == "field":
        fields = {
            "callSessionState": _STATES[event],
            "streamEvent": event,
            "sessionId": call.session_id,
            "streamSid": stream_sid,
            "timestamp": timestamp,
        }
        if name:
            fields["name"] = name
        if error:
            fields["error"] = error
        return fields
    raise ValueError(f"status dialect must be one of {STATUS_DIALECTS}")
