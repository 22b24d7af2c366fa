"""The lever benchmarks measure what they claim: the real frame path, the quota arithmetic."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.protocol import Protocol, Side, State

from bench import frame_cost
from bench.cpu_quota import CpuQuota, throttling


def _messages(data: bytes, side: Side) -> list:
    receiver = Protocol(side, state=State.OPEN, max_size=None)
    receiver.receive_data(data)
    return receiver.events_received()


def test_uplink_loop_sends_one_append_per_40_ms_with_the_resampled_audio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[bytes] = []
    original = Protocol.data_to_send

    def capture(self: Protocol) -> list[bytes]:
        chunks = original(self)
        if self.side is Side.CLIENT:
            sent.append(b"".join(chunks))
        return chunks

    run = frame_cost.build("uplink", 50)
    monkeypatch.setattr(Protocol, "data_to_send", capture)
    run(None)
    appends = [json.loads(m.data) for data in sent for m in _messages(data, Side.SERVER)]
    assert all(a["type"] == "input_audio_buffer.append" for a in appends)
    assert 24 <= len(appends) <= 25  # 50 frames of 20 ms in 40 ms blocks
    audio = b"".join(base64.b64decode(a["audio"]) for a in appends)
    assert 0.9 <= len(audio) / (50 * 0.02 * 24000 * 2) <= 1.0  # 24 kHz, less soxr's hold-back


def test_downlink_loop_releases_exact_20_ms_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []
    original = Protocol.data_to_send

    def capture(self: Protocol) -> list[bytes]:
        chunks = original(self)
        if self.side is Side.SERVER and chunks:
            sent.append(b"".join(chunks))
        return chunks

    run = frame_cost.build("downlink", 60)
    monkeypatch.setattr(Protocol, "data_to_send", capture)
    run(None)
    frames = [m.data for data in sent for m in _messages(data, Side.CLIENT)]
    assert len(frames) >= 50
    assert {len(f) for f in frames} == {frame_cost.FRAME_BYTES}


@pytest.mark.parametrize("variant", sorted(frame_cost.VARIANTS))
def test_every_variant_runs_and_restores_its_lever(variant: str) -> None:
    from websockets import frames

    from media_node.models import pcm_base64

    before = (pcm_base64.encode, pcm_base64.decode, frames.apply_mask, frames.secrets)
    with frame_cost._lever(variant):
        assert frame_cost.build(variant, 12)(None) > 0
    assert (pcm_base64.encode, pcm_base64.decode, frames.apply_mask, frames.secrets) == before


def test_pooled_masks_are_fresh_four_byte_slices_that_still_mask_correctly() -> None:
    pooled = frame_cost._PooledSecrets()
    masks = [pooled.token_bytes(4) for _ in range(2 * frame_cost._PooledSecrets.POOL // 4)]
    assert {len(mask) for mask in masks} == {4}
    assert len(set(masks)) > len(masks) * 0.99  # random, and the pool refills
    with frame_cost._lever("uplink/pooled-masks"):
        client = Protocol(Side.CLIENT, state=State.OPEN)
        client.send_binary(b"\x01\x02" * 100)
        data = b"".join(client.data_to_send())
    assert data[1] & 0x80  # masked, as a client must
    assert [m.data for m in _messages(data, Side.SERVER)] == [b"\x01\x02" * 100]


def test_quota_arithmetic_and_throttling() -> None:
    quota = CpuQuota(0.25, period_ms=10)
    assert (quota.period_us, quota.quota_us) == (10_000, 2_500)
    with pytest.raises(ValueError):
        CpuQuota(0)
    with pytest.raises(ValueError, match="real-time quota"):
        CpuQuota(1.0, realtime=True)
    before = {"nr_periods": 100, "nr_throttled": 10, "throttled_time": 5_000_000}
    after = {"nr_periods": 300, "nr_throttled": 60, "throttled_time": 25_000_000}
    assert throttling(before, after, window_s=2.0) == {
        "periods": 200,
        "throttled_periods": 50,
        "throttled_share": 0.25,
        "throttled_ms_per_s": 10.0,
    }
    assert throttling({}, {}, 1.0)["throttled_share"] is None
