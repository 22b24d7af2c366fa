"""Sending a WebSocket message without a coroutine, when nothing has to wait.

``Connection.send`` (websockets' asyncio API) enters an async context manager that checks the
connection's state, has the sans-I/O protocol frame the message, writes it to the transport and
awaits the write buffer's drain. For a 640-byte frame every 20 ms per call that machinery (an
async generator, a coroutine, often a future) costs more than the write itself. When the
connection is open, no fragmented message is in progress and the transport is not paused for
flow control, none of it can wait, and `send_now` does the same steps directly: frame with the
connection's protocol, write with the connection's `send_data`. In every other case it sends
nothing and returns False, and the caller awaits ``ws.send`` as usual (which waits for the
buffer to drain, or raises ``ConnectionClosed``).

Three of the attributes used are websockets internals, not documented API: ``paused`` (the
transport asked us to stop writing), ``send_in_progress`` (a fragmented message is being sent)
and ``send_data()`` (write what the protocol framed). They were checked against websockets 17.4
(the version pinned in requirements.lock); tests/functional/test_socket_send.py pins each of
them, so an upgrade that changes them fails there first. ``state``, ``transport``, ``protocol``
and the protocol's ``send_text``/``send_binary`` are documented.
"""

from __future__ import annotations

from typing import Any

from websockets.protocol import State


def send_now(ws: Any, message: bytes | str) -> bool:
    """Sends `message` at once if the connection can take it without waiting.

    Args:
        ws: A websockets asyncio connection (server or client side).
        message: Bytes for a binary message, str for a text message.

    Returns:
        True when the message was written to the transport; False when nothing was sent and
        ``await ws.send(message)`` should be used instead.
    """
    if (
        ws.state is not State.OPEN
        or ws.paused
        or ws.send_in_progress is not None
        or ws.transport.is_closing()
    ):
        return False
    if isinstance(message, str):
        ws.protocol.send_text(message.encode())
    else:
        ws.protocol.send_binary(message)
    ws.send_data()
    return True
