"""The media socket limiter on an explicit clock: rates, sizes, silence, log-once counting."""

from __future__ import annotations

import pytest

from mapokezi.config import ConfigError
from media_node.socket_limits import (
    POLICY_VIOLATION,
    Action,
    SocketLimiter,
    SocketLimits,
    TokenBucket,
)

FRAME = 640  # 20 ms of 16 kHz mono PCM


def honest_stream(limiter: SocketLimiter, seconds: float, start: float = 0.0) -> list[Action]:
    """One 20 ms audio frame every 20 ms, as the platform sends them (silence included)."""
    count = round(seconds / 0.02)
    return [limiter.on_message(False, FRAME, start + i * 0.02).action for i in range(count)]


def test_an_honest_stream_is_delivered_in_full() -> None:
    limiter = SocketLimiter(SocketLimits(), now=0.0)
    assert limiter.on_message(True, 400, 0.0).action is Action.DELIVER  # metadata
    assert set(honest_stream(limiter, 120.0)) == {Action.DELIVER}
    assert limiter.closed is None
    assert limiter.summary() is None


def test_a_backlog_after_a_network_stall_is_delivered() -> None:
    limiter = SocketLimiter(SocketLimits(), now=0.0)
    honest_stream(limiter, 10.0)
    # 5 s of frames held up somewhere arrive at once, then the stream carries on.
    burst = [limiter.on_message(False, FRAME, 15.0).action for _ in range(250)]
    assert set(burst) == {Action.DELIVER}
    assert set(honest_stream(limiter, 10.0, start=15.02)) == {Action.DELIVER}


def test_a_text_frame_flood_closes_with_a_policy_violation() -> None:
    limits = SocketLimits(text_frames_per_second=5, text_frame_burst=20)
    limiter = SocketLimiter(limits, now=0.0)
    verdicts = [limiter.on_message(True, 30, 1.0) for _ in range(1000)]
    actions = [v.action for v in verdicts]
    assert actions[:20] == [Action.DELIVER] * 20
    assert actions[20] is Action.CLOSE
    assert set(actions[21:]) == {Action.DROP}  # everything after the close is dropped quietly
    close = verdicts[20]
    assert (close.code, close.reason) == (POLICY_VIOLATION, "more than 5 text frames per second")
    assert [v.log for v in verdicts if v.log] == ["closing: more than 5 text frames per second"]
    assert limiter.summary() == "ignored 979 frames after closing"


def test_text_frames_at_a_modest_rate_are_fine() -> None:
    limiter = SocketLimiter(SocketLimits(text_frames_per_second=5), now=0.0)
    actions = {limiter.on_message(True, 30, i * 0.25).action for i in range(400)}  # 4 per second
    assert actions == {Action.DELIVER}


def test_too_many_frames_or_bytes_close() -> None:
    frames = SocketLimiter(SocketLimits(frames_per_second=150, frame_burst=1000), now=0.0)
    actions = [frames.on_message(False, 2, 0.0).action for _ in range(1001)]  # tiny frames
    assert actions[-1] is Action.CLOSE and actions[-2] is Action.DELIVER
    assert frames.closed is not None
    assert frames.closed.reason == "more than 150 frames per second"

    octets = SocketLimiter(SocketLimits(bytes_per_second=256_000, byte_burst=2_000_000), now=0.0)
    actions = [octets.on_message(False, 30_000, i * 0.01).action for i in range(200)]
    assert Action.CLOSE in actions
    assert octets.closed is not None
    assert octets.closed.reason == "more than 256000 bytes per second"


def test_oversized_audio_frames_are_dropped_and_logged_once_with_a_count() -> None:
    limiter = SocketLimiter(SocketLimits(max_audio_frame_bytes=32_000), now=0.0)
    verdicts = [limiter.on_message(False, 40_000, i * 0.5) for i in range(12)]
    assert {v.action for v in verdicts} == {Action.DROP}
    logs = [v.log for v in verdicts if v.log]
    assert logs == [
        "dropping oversized audio frames (40000 bytes > 32000); further ones are counted"
    ]
    assert limiter.on_message(False, FRAME, 6.0).action is Action.DELIVER
    assert limiter.summary() == "dropped 12 oversized frames"


def test_a_socket_that_never_sends_is_idle_once_its_reader_waited_long_enough() -> None:
    limiter = SocketLimiter(SocketLimits(idle_seconds=15.0), now=0.0)
    limiter.waiting_since = 0.0
    assert limiter.check_idle(14.9) is None
    verdict = limiter.check_idle(15.0)
    assert verdict is not None and verdict.action is Action.CLOSE
    assert (verdict.code, verdict.reason) == (POLICY_VIOLATION, "no media frames for 15 s")
    assert limiter.check_idle(16.0) is None  # closed once


def test_frames_of_silence_keep_a_socket_alive() -> None:
    limiter = SocketLimiter(SocketLimits(idle_seconds=15.0), now=0.0)
    for i in range(3000):  # 60 s of silent frames, the reader waiting between them
        now = i * 0.02
        limiter.waiting_since = now
        assert limiter.check_idle(now + 0.019) is None
        limiter.waiting_since = None
        limiter.on_message(False, FRAME, now + 0.02)
    limiter.waiting_since = 60.0
    assert limiter.check_idle(74.0) is None
    assert limiter.check_idle(75.1) is not None  # then the frames stop


def test_a_busy_reader_is_not_idle() -> None:
    limiter = SocketLimiter(SocketLimits(idle_seconds=15.0), now=0.0)
    limiter.on_message(False, FRAME, 1.0)  # the reader is then off doing something else:
    assert limiter.check_idle(100.0) is None  # frames may be queued meanwhile
    limiter.waiting_since = 100.0
    assert limiter.check_idle(114.0) is None
    assert limiter.check_idle(115.0) is not None


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=4.0, now=0.0)
    assert [bucket.take(1, 0.0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.take(1, 0.5) and not bucket.take(1, 0.5)
    assert [bucket.take(1, 100.0) for _ in range(5)] == [True] * 4 + [False]


def test_limits_from_the_environment() -> None:
    assert SocketLimits.from_env({}) == SocketLimits()
    limits = SocketLimits.from_env(
        {
            "MEDIA_IDLE_SECONDS": "2.5",
            "MEDIA_MAX_MESSAGE_BYTES": "131072",
            "MEDIA_TEXT_FRAMES_PER_SECOND": "2",
            "MEDIA_PING_INTERVAL_SECONDS": "5",
        }
    )
    assert limits.idle_seconds == 2.5
    assert limits.max_message_bytes == 131072
    assert limits.text_frames_per_second == 2.0
    assert limits.ping_interval == 5.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEDIA_IDLE_SECONDS": "soon"}, "MEDIA_IDLE_SECONDS must be a number, got 'soon'"),
        ({"MEDIA_IDLE_SECONDS": "nan"}, "MEDIA_IDLE_SECONDS must be a finite number, got 'nan'"),
        ({"MEDIA_FRAMES_PER_SECOND": "10"}, "MEDIA_FRAMES_PER_SECOND must be at least 50, got 10"),
        (
            {"MEDIA_MAX_MESSAGE_BYTES": "2048", "MEDIA_MAX_AUDIO_FRAME_BYTES": "4096"},
            "MEDIA_MAX_AUDIO_FRAME_BYTES must not exceed MEDIA_MAX_MESSAGE_BYTES (4096 > 2048)",
        ),
    ],
)
def test_bad_limits_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SocketLimits.from_env(env)
    assert str(caught.value) == message
