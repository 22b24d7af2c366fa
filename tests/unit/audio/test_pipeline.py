"""The downlink as the bridge wires it: resample, frame, pace, and account for what was heard."""

from __future__ import annotations

import numpy as np
import pytest

from media_node.audio import Framer, Pacer, StreamResampler, frame_bytes
from tests.unit.audio.signals import speech_like, to_pcm

T0 = 200.0


def deltas(pcm: bytes, sizes: list[int]) -> list[bytes]:
    """`pcm` cut like model deltas of uneven (even-byte) sizes."""
    out, offset, index = [], 0, 0
    while offset < len(pcm):
        out.append(pcm[offset : offset + sizes[index % len(sizes)]])
        offset += sizes[index % len(sizes)]
        index += 1
    return out


@pytest.mark.parametrize("rate", [16000, 8000])
def test_a_whole_reply_reaches_the_caller_in_real_time(rate: int) -> None:
    reply = to_pcm(speech_like(24000, 0.73))
    down, framer, pacer = StreamResampler(24000, rate), Framer(frame_bytes(rate)), Pacer()

    released, now = [], T0
    for delta in deltas(reply, [4800, 962, 14400, 2]):
        for frame in framer.push(down.process(delta)):
            pacer.enqueue(frame, "item-1")
        released += pacer.release(now)
    for frame in framer.push(down.flush()):
        pacer.enqueue(frame, "item-1")
    pacer.enqueue(framer.flush(), "item-1")
    pacer.end_reply()
    while (wakeup := pacer.next_wakeup(now)) is not None:
        now = wakeup
        released += pacer.release(now)

    one_shot = StreamResampler(24000, rate)
    expected = one_shot.process(reply) + one_shot.flush()
    sent = b"".join(r.frame for r in released)
    assert sent[: len(expected)] == expected
    assert sent[len(expected) :] == bytes(len(sent) - len(expected))  # silence pad only
    assert len(sent) - len(expected) < frame_bytes(rate)
    assert len(released) * 20 - 730 < 20
    assert pacer.stats.underruns == 0
    assert pacer.ledger.released_ms("item-1") == len(released) * 20
    assert pacer.ledger.heard_ms("item-1", now + 1) == len(released) * 20


def test_barge_in_truncates_at_what_was_heard() -> None:
    reply = to_pcm(speech_like(24000, 2.0))
    down, framer, pacer = StreamResampler(24000, 16000), Framer(640), Pacer()
    for frame in framer.push(down.process(reply)):
        pacer.enqueue(frame, "item-1")

    now = T0
    pacer.release(now)
    while now < T0 + 0.4567:
        now = min(pacer.next_wakeup(now), T0 + 0.4567)
        pacer.release(now)
    dropped = pacer.clear(now)
    framer.clear()
    down.clear()

    assert dropped > 0
    assert pacer.ledger.heard_ms("item-1", now) == pytest.approx(456.7)
    assert pacer.ledger.heard_ms("item-1", now + 5) == pytest.approx(456.7)
    assert pacer.ledger.released_ms("item-1") == pytest.approx(456.7 + 60, abs=20)
    assert np.frombuffer(down.flush(), "<i2").size == 0
