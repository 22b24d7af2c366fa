"""``make call``'s options for transfers: the person and the platform's repeated callbacks."""

from __future__ import annotations

import pytest

from local.emulator.__main__ import build_parser, main, options_from_args
from local.emulator.options import CallOptions


def options(*argv: str) -> CallOptions:
    return options_from_args(build_parser().parse_args(["--voice-url", "http://x/voice", *argv]))


def test_person_and_callback_copies_reach_the_call_options() -> None:
    chosen = options(
        "--person",
        "hang-up-first",
        "--person-answer-after",
        "4.5",
        "--stream-stopped-copies",
        "2",
        "--stream-stopped-event",
        "--no-restream-post",
        "--rescue-wait",
        "12",
    )
    assert chosen.person == "hang-up-first"
    assert chosen.person_answer_seconds == 4.5
    assert chosen.stream_stopped_copies == 2 and chosen.stream_stopped_event is True
    assert chosen.restream_post is False
    assert chosen.rescue_wait_seconds == 12.0


def test_defaults_send_each_callback_once_and_answer_after_a_second() -> None:
    chosen = options()
    assert (chosen.person, chosen.person_answer_seconds) == ("answer", 1.0)
    assert chosen.stream_stopped_copies == 1 and chosen.stream_stopped_event is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stream-stopped-copies", "0"], "--stream-stopped-copies must be at least 1"),
        (["--person-answer-after", "-1"], "--person-answer-after must not be negative"),
    ],
)
def test_impossible_values_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--voice-url", "http://x/voice", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
