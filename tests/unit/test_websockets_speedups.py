"""websockets masks and unmasks frames with its C extension, not the pure-Python fallback.

Every frame a client sends is masked and every frame a server receives is unmasked: for the node
that is each caller frame in and each append to the model out. websockets falls back silently to
a Python loop when its ``speedups`` extension is missing (a source build without a compiler),
which multiplies the cost of masking several times over.
"""

from __future__ import annotations

import types

from websockets import frames, speedups
from websockets.protocol import Protocol, Side, State


def test_frames_are_masked_by_the_c_extension() -> None:
    assert frames.apply_mask is speedups.apply_mask
    assert not isinstance(frames.apply_mask, types.FunctionType)  # a builtin, not Python


def test_a_masked_client_frame_round_trips_through_the_server_side() -> None:
    client = Protocol(Side.CLIENT, state=State.OPEN)
    server = Protocol(Side.SERVER, state=State.OPEN)
    payload = bytes(range(256)) * 5
    client.send_binary(payload)
    wire_bytes = b"".join(client.data_to_send())
    assert payload not in wire_bytes  # masked on the wire
    server.receive_data(wire_bytes)
    [frame] = server.events_received()
    assert frame.data == payload
