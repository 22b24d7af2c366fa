"""The emulator's verdict on the answers to the platform's retries of the first POST."""

from __future__ import annotations

from local.emulator.retries import concurrent_copies_disagree, late_copy_problems
from local.emulator.webhook import HttpExchange

STREAM = '<Response><Stream url="wss://m/audio?token=A" connect="true" /></Response>'
OTHER_STREAM = '<Response><Stream url="wss://m/audio?token=B" connect="true" /></Response>'
EMPTY = "<Response />"


def exchange(label: str, body: str, status: int = 200) -> HttpExchange:
    return HttpExchange(label, "http://x/voice", {}, status, "application/xml", body)


def test_identical_concurrent_copies_agree() -> None:
    first = exchange("initial", STREAM)
    assert concurrent_copies_disagree(first, [exchange("initial-copy-1", STREAM)]) == []


def test_a_concurrent_copy_with_another_token_is_an_error() -> None:
    first = exchange("initial", STREAM)
    [error] = concurrent_copies_disagree(first, [exchange("initial-copy-1", OTHER_STREAM)])
    assert "different answer" in error
    [failed] = concurrent_copies_disagree(first, [exchange("initial-copy-2", "", 500)])
    assert "HTTP 500" in failed


def test_a_late_copy_may_repeat_the_answer_or_be_empty_but_not_re_stream() -> None:
    first = exchange("initial", STREAM)
    assert late_copy_problems(first, exchange("late", STREAM)) == []
    assert late_copy_problems(first, exchange("late", EMPTY)) == []
    [error] = late_copy_problems(first, exchange("late", OTHER_STREAM))
    assert "Stream" in error
