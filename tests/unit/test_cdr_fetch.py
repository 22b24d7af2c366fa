"""The CDR fetch decisions, as pure functions: final or not, backoff, bounds, error classes."""

from __future__ import annotations

from typing import Any

import pytest

from mapokezi.config import ConfigError
from mapokezi.sautikit_api import SautikitApiError
from serverless.cdr_fetch import (
    OUT_OF_TIME,
    FetchPolicy,
    Redeliver,
    Retry,
    Store,
    cdr_from_call,
    clamp_delay,
    decide_on_call,
    decide_on_error,
    is_final,
)

AT = "2026-11-21T09:30:00.000Z"
POLICY = FetchPolicy()


def platform_call(**overrides: Any) -> dict[str, Any]:
    call = {
        "id": "7b0c5a3e-8d52-4c1f-9a57-0b7a1c2d3e4f",
        "session_id": "HD_24d73b4518bc",
        "status": "completed",
        "duration_seconds": 95,
        "cost_minor": 600,
        "cost_currency": "KES",
        "rate_per_minute_minor": 300,
        "started_at": "2026-11-21T09:00:00Z",
        "answered_at": "2026-11-21T09:00:05Z",
        "ended_at": "2026-11-21T09:01:40Z",
        "failure_code": None,
        "events": [{"kind": "call.started"}],
        "workspace_id": "w",
    }
    return call | overrides


def test_backoff_doubles_from_30_and_caps_at_900() -> None:
    assert [POLICY.backoff(a) for a in range(8)] == [30, 60, 120, 240, 480, 900, 900, 900]
    assert POLICY.backoff(10_000) == 900


def test_backoff_follows_configured_base() -> None:
    assert FetchPolicy(base_delay_seconds=5).backoff(2) == 20


def test_clamp_delay_rounds_up_within_sqs_limits() -> None:
    assert clamp_delay(0, POLICY) == 1
    assert clamp_delay(1.2, POLICY) == 2
    assert clamp_delay(5000, POLICY) == 900
    assert clamp_delay(5000, FetchPolicy(max_delay_seconds=2000)) == 900


def test_policy_from_env() -> None:
    policy = FetchPolicy.from_env(
        {"CDR_RETRY_BASE_SECONDS": "10", "CDR_MAX_ATTEMPTS": "4", "CDR_NOT_FOUND_ATTEMPTS": "1"}
    )
    assert (policy.base_delay_seconds, policy.max_attempts, policy.not_found_attempts) == (10, 4, 1)
    assert FetchPolicy.from_env({}) == FetchPolicy()
    with pytest.raises(ConfigError, match="CDR_MAX_ATTEMPTS must be a whole number, got 'x'"):
        FetchPolicy.from_env({"CDR_MAX_ATTEMPTS": "x"})


@pytest.mark.parametrize("status", ["completed", "failed", "no_answer", "busy", "canceled"])
def test_terminal_statuses_with_cost_are_final(status: str) -> None:
    assert is_final(platform_call(status=status))


@pytest.mark.parametrize(
    "overrides", [{"status": "ringing"}, {"status": "answered"}, {"cost_minor": None}, {}]
)
def test_live_or_unpriced_calls_are_not_final(overrides: dict[str, Any]) -> None:
    call = platform_call(**overrides) if overrides else {"status": "completed"}
    assert not is_final(call)


def test_cdr_copies_documented_fields_only() -> None:
    cdr = cdr_from_call(platform_call(), fetch_state="done", attempts=2, fetched_at=AT)
    assert cdr == {
        "status": "completed",
        "duration_seconds": 95,
        "cost_minor": 600,
        "cost_currency": "KES",
        "rate_per_minute_minor": 300,
        "started_at": "2026-11-21T09:00:00Z",
        "answered_at": "2026-11-21T09:00:05Z",
        "ended_at": "2026-11-21T09:01:40Z",
        "failure_code": None,
        "session_id": "HD_24d73b4518bc",
        "platform_call_id": "7b0c5a3e-8d52-4c1f-9a57-0b7a1c2d3e4f",
        "fetched_at": AT,
        "fetch_state": "done",
        "attempts": 2,
    }


def test_final_call_is_stored_done() -> None:
    decision = decide_on_call(platform_call(), 0, POLICY, fetched_at=AT)
    assert isinstance(decision, Store)
    assert decision.cdr["fetch_state"] == "done" and decision.cdr["attempts"] == 1


def test_not_final_call_is_retried_with_backoff() -> None:
    decision = decide_on_call(
        platform_call(status="answered", cost_minor=None), 2, POLICY, fetched_at=AT
    )
    assert isinstance(decision, Retry)
    assert (decision.attempt, decision.delay_seconds) == (3, 120)
    assert decision.cdr["fetch_state"] == "queued" and decision.cdr["status"] == "answered"


def test_gives_up_after_max_attempts_with_last_status() -> None:
    call = platform_call(status="answered", cost_minor=None)
    assert isinstance(decide_on_call(call, 6, POLICY, fetched_at=AT), Retry)
    decision = decide_on_call(call, 7, POLICY, fetched_at=AT)
    assert isinstance(decision, Store)
    assert decision.cdr["fetch_state"] == "gave_up"
    assert decision.cdr["status"] == "answered" and decision.cdr["attempts"] == 8
    assert decision.cdr["error"] == "not final after 8 attempts (status answered)"


def error(status: int | None, code: str, retry_after: float | None = None) -> SautikitApiError:
    return SautikitApiError(status, code, "why", retry_after=retry_after)


@pytest.mark.parametrize(
    "exc",
    [
        error(500, "internal_error"),
        error(503, "http.503"),
        error(None, "transport.timeout"),
        error(None, "transport.connection"),
        error(200, "response.malformed"),
    ],
)
def test_transient_failures_back_off_like_a_not_final_record(exc: SautikitApiError) -> None:
    delays = []
    for attempt in range(6):
        decision = decide_on_error(exc, attempt, POLICY, fetched_at=AT, age_seconds=600)
        assert isinstance(decision, Retry)
        assert decision.attempt == attempt + 1
        assert decision.cdr["fetch_state"] == "queued"
        assert decision.cdr["error"] == f"{exc.code}: why"
        delays.append(decision.delay_seconds)
    assert delays == [30, 60, 120, 240, 480, 900]


def test_transient_failures_stop_only_past_the_age_bound() -> None:
    exc = error(503, "http.503")
    late = decide_on_error(exc, 40, POLICY, fetched_at=AT, age_seconds=POLICY.max_age_seconds - 1)
    assert isinstance(late, Retry)  # attempts alone never end an outage's retries
    over = decide_on_error(exc, 41, POLICY, fetched_at=AT, age_seconds=POLICY.max_age_seconds)
    assert isinstance(over, Store)
    assert over.cdr["fetch_state"] == "failed"
    assert over.cdr["error"].startswith("http.503: why (still failing")


def test_an_hour_of_outage_stays_within_the_age_bound() -> None:
    elapsed, attempt = 0, 0
    while elapsed < 3600:
        decision = decide_on_error(
            error(500, "internal_error"), attempt, POLICY, fetched_at=AT, age_seconds=elapsed
        )
        assert isinstance(decision, Retry)
        elapsed += decision.delay_seconds
        attempt = decision.attempt


def test_running_out_of_invocation_time_is_redelivered() -> None:
    decision = decide_on_error(error(None, OUT_OF_TIME), 0, POLICY, fetched_at=AT)
    assert isinstance(decision, Redeliver)


@pytest.mark.parametrize(
    "exc",
    [
        error(401, "api_key.invalid"),
        error(403, "api_key.scope_denied"),
        error(400, "request.invalid"),
        error(None, "config.invalid"),
    ],
)
def test_configuration_problems_are_recorded_as_error(exc: SautikitApiError) -> None:
    decision = decide_on_error(exc, 0, POLICY, fetched_at=AT)
    assert isinstance(decision, Store)
    assert decision.cdr["fetch_state"] == "error"
    assert decision.cdr["error"] == f"{exc.code}: why"
    assert decision.cdr["status"] is None and decision.cdr["cost_minor"] is None


def test_not_found_retries_a_few_times_then_gives_up() -> None:
    exc = error(404, "calls.not_found")
    first = decide_on_error(exc, 0, POLICY, fetched_at=AT)
    assert isinstance(first, Retry) and (first.attempt, first.delay_seconds) == (1, 30)
    assert isinstance(decide_on_error(exc, 1, POLICY, fetched_at=AT), Retry)
    last = decide_on_error(exc, 2, POLICY, fetched_at=AT)
    assert isinstance(last, Store)
    assert last.cdr["fetch_state"] == "gave_up" and last.cdr["error"] == "not_found"


def test_rate_limit_uses_retry_after_or_backoff() -> None:
    honoured = decide_on_error(error(429, "rate_limited", 7.5), 0, POLICY, fetched_at=AT)
    assert isinstance(honoured, Retry) and honoured.delay_seconds == 8
    capped = decide_on_error(error(429, "rate_limited", 3600), 0, POLICY, fetched_at=AT)
    assert isinstance(capped, Retry) and capped.delay_seconds == 900
    no_header = decide_on_error(error(429, "rate_limited"), 1, POLICY, fetched_at=AT)
    assert isinstance(no_header, Retry) and no_header.delay_seconds == 60
    exhausted = decide_on_error(error(429, "rate_limited", 1), 7, POLICY, fetched_at=AT)
    assert isinstance(exhausted, Store) and exhausted.cdr["error"] == "rate_limited"


def test_pending_waits_at_least_the_backoff() -> None:
    short = decide_on_error(error(202, "call.pending", 1), 0, POLICY, fetched_at=AT)
    assert isinstance(short, Retry) and short.delay_seconds == 30
    long = decide_on_error(error(202, "call.pending", 300), 0, POLICY, fetched_at=AT)
    assert isinstance(long, Retry) and long.delay_seconds == 300
