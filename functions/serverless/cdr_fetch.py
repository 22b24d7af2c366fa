"""Fetching a call's detail record (CDR) from Sautikit after hangup: when to store, retry or fail.

The platform computes cost at hangup, and ``GET /v1/calls/{id}`` may still show a call as
``answered`` (or without ``cost_minor``) for a while. A fetch job therefore ends in one of:

- :class:`Store`: the record is final, or we give up, or the failure needs an operator (401/403):
  write ``cdr`` on the call record and stop.
- :class:`Retry`: re-enqueue with ``attempt + 1`` after a delay (not final yet, 202, 404 while
  the platform may not have the row, 429 with its ``Retry-After``, and transient failures: 5xx,
  timeout, connection error, malformed JSON). Transient failures back off like a not-final
  record and stop only when the job is older than ``max_age_seconds`` (``failed``), so an
  outage of the platform of an hour or more loses no CDR.
- :class:`Redeliver`: this invocation ran out of time: fail the SQS record so SQS redelivers it
  to a fresh one (the queue's DLQ catches it after ``maxReceiveCount``).

:func:`decide_on_call` and :func:`decide_on_error` are pure; :func:`run_fetch` does the I/O
through the table, client and enqueue function it is given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mapokezi import store
from mapokezi.config import env_int
from mapokezi.handoff import person_leg_cost
from mapokezi.sautikit_api import SautikitApiError
from serverless.cdr_jobs import CdrJob

TERMINAL_STATUSES = frozenset({"completed", "failed", "no_answer", "busy", "canceled"})
MAX_SQS_DELAY_SECONDS = 900

STATE_QUEUED = "queued"
STATE_DONE = "done"
STATE_GAVE_UP = "gave_up"
STATE_ERROR = "error"
#: The fetch could not be completed (platform down past the age bound, or dead-lettered).
STATE_FAILED = "failed"
#: Error code for "no time left in this invocation": redelivered, not counted as a failure.
OUT_OF_TIME = "invocation.out_of_time"

#: Platform CDR fields copied onto our call record's ``cdr``.
_COPIED_FIELDS = (
    "status",
    "duration_seconds",
    "cost_minor",
    "cost_currency",
    "rate_per_minute_minor",
    "started_at",
    "answered_at",
    "ended_at",
    "failure_code",
    "session_id",
)


class RedeliverError(RuntimeError):
    """Raised for a transient failure so the batch reports the record and SQS redelivers it."""


@dataclass(frozen=True)
class FetchPolicy:
    """Backoff and bounds; ``attempt`` 0 is the first fetch.

    Attributes:
        base_delay_seconds: delay before the second fetch; doubled for every further one.
        max_delay_seconds: cap on a delay (SQS allows at most 900 s).
        max_attempts: fetches of a not-final record before giving up.
        not_found_attempts: fetches answered 404 before giving up with ``not_found``.
        max_age_seconds: how long after the first queueing transient failures are retried.
    """

    base_delay_seconds: int = 30
    max_delay_seconds: int = MAX_SQS_DELAY_SECONDS
    max_attempts: int = 8
    not_found_attempts: int = 3
    max_age_seconds: int = 6 * 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FetchPolicy:
        """Read ``CDR_RETRY_BASE_SECONDS``, ``CDR_MAX_ATTEMPTS``, ``CDR_NOT_FOUND_ATTEMPTS``,
        ``CDR_MAX_AGE_SECONDS``."""
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            base_delay_seconds=env_int(env, "CDR_RETRY_BASE_SECONDS", d.base_delay_seconds, low=1),
            max_delay_seconds=d.max_delay_seconds,
            max_attempts=env_int(env, "CDR_MAX_ATTEMPTS", d.max_attempts, low=1),
            not_found_attempts=env_int(env, "CDR_NOT_FOUND_ATTEMPTS", d.not_found_attempts, low=1),
            max_age_seconds=env_int(env, "CDR_MAX_AGE_SECONDS", d.max_age_seconds, low=1),
        )

    def backoff(self, attempt: int) -> int:
        """Delay before re-fetching after fetch number ``attempt`` (30, 60, 120 … ≤ 900 s)."""
        return clamp_delay(self.base_delay_seconds * 2 ** max(0, min(attempt, 20)), self)


def clamp_delay(seconds: float, policy: FetchPolicy) -> int:
    """Whole seconds between 1 and the policy's (and SQS's) maximum."""
    return max(1, min(int(math.ceil(seconds)), policy.max_delay_seconds, MAX_SQS_DELAY_SECONDS))


@dataclass(frozen=True)
class Store:
    """Write ``cdr`` on the call record and finish the job."""

    cdr: dict[str, Any]


@dataclass(frozen=True)
class Retry:
    """Record ``cdr`` (state queued); re-enqueue as ``attempt`` after ``delay_seconds``."""

    attempt: int
    delay_seconds: int
    cdr: dict[str, Any]


@dataclass(frozen=True)
class Redeliver:
    """Fail this SQS record; SQS redelivers it after the visibility timeout."""

    reason: str


Decision = Store | Retry | Redeliver


def is_final(call: Mapping[str, Any]) -> bool:
    """Whether a platform CDR is final: a terminal status and a computed cost."""
    return call.get("status") in TERMINAL_STATUSES and call.get("cost_minor") is not None


def cdr_from_call(
    call: Mapping[str, Any], *, fetch_state: str, attempts: int, fetched_at: str
) -> dict[str, Any]:
    """Our ``cdr`` attribute from the platform's ``Call`` object."""
    cdr: dict[str, Any] = {name: call.get(name) for name in _COPIED_FIELDS}
    cdr["platform_call_id"] = call.get("id")
    cdr.update(fetched_at=fetched_at, fetch_state=fetch_state, attempts=attempts)
    if (leg := person_leg_cost(call)) is not None:  # a transfer's outbound leg, when listed
        cdr["person_leg"] = leg
    return cdr


def _error_cdr(
    fetch_state: str, error: str, *, attempts: int, fetched_at: str, status: str | None = None
) -> dict[str, Any]:
    cdr: dict[str, Any] = dict.fromkeys(_COPIED_FIELDS)
    cdr.update(
        status=status,
        platform_call_id=None,
        fetched_at=fetched_at,
        fetch_state=fetch_state,
        attempts=attempts,
        error=error,
    )
    return cdr


def decide_on_call(
    call: Mapping[str, Any], attempt: int, policy: FetchPolicy, *, fetched_at: str
) -> Decision:
    """What to do with a fetched CDR: store it if final, else retry or give up."""
    attempts = attempt + 1
    if is_final(call):
        return Store(
            cdr_from_call(call, fetch_state=STATE_DONE, attempts=attempts, fetched_at=fetched_at)
        )
    if attempts >= policy.max_attempts:
        cdr = cdr_from_call(
            call, fetch_state=STATE_GAVE_UP, attempts=attempts, fetched_at=fetched_at
        )
        cdr["error"] = f"not final after {attempts} attempts (status {call.get('status')})"
        return Store(cdr)
    cdr = cdr_from_call(call, fetch_state=STATE_QUEUED, attempts=attempts, fetched_at=fetched_at)
    return Retry(attempts, policy.backoff(attempt), cdr)


def decide_on_error(
    error: SautikitApiError,
    attempt: int,
    policy: FetchPolicy,
    *,
    fetched_at: str,
    age_seconds: float = 0.0,
) -> Decision:
    """What to do when fetching the CDR failed with ``error``, ``age_seconds`` after the job
    was first queued."""
    attempts = attempt + 1
    described = f"{error.code}: {error.message}"
    if error.code == OUT_OF_TIME:
        return Redeliver(described)
    if error.transient:
        if age_seconds >= policy.max_age_seconds:
            failed = f"{described} (still failing {int(age_seconds)} s after the hangup)"
            return Store(_error_cdr(STATE_FAILED, failed, attempts=attempts, fetched_at=fetched_at))
        cdr = _error_cdr(STATE_QUEUED, described, attempts=attempts, fetched_at=fetched_at)
        return Retry(attempts, policy.backoff(attempt), cdr)

    def queued_or_gave_up(limit: int, give_up_as: str, delay: int) -> Decision:
        if attempts >= limit:
            return Store(
                _error_cdr(STATE_GAVE_UP, give_up_as, attempts=attempts, fetched_at=fetched_at)
            )
        cdr = _error_cdr(STATE_QUEUED, described, attempts=attempts, fetched_at=fetched_at)
        return Retry(attempts, delay, cdr)

    if error.status == 404:
        return queued_or_gave_up(policy.not_found_attempts, "not_found", policy.backoff(attempt))
    if error.status == 429:
        delay = policy.backoff(attempt) if error.retry_after is None else error.retry_after
        return queued_or_gave_up(policy.max_attempts, "rate_limited", clamp_delay(delay, policy))
    if error.code == "call.pending":
        delay = max(policy.backoff(attempt), error.retry_after or 0)
        return queued_or_gave_up(policy.max_attempts, "pending", clamp_delay(delay, policy))
    # 401/403 (key invalid, revoked or lacking calls.read) and other 4xx need an operator.
    return Store(_error_cdr(STATE_ERROR, described, attempts=attempts, fetched_at=fetched_at))


@dataclass(frozen=True)
class Outcome:
    """What :func:`run_fetch` did: ``stored``, ``retried``, ``dropped`` or ``duplicate``.

    A job is a ``duplicate`` when the CDR is already ``done``, or when the record says a later
    attempt is queued (SQS delivers at least once).
    """

    action: str
    fetch_state: str | None = None
    detail: str = ""


Enqueue = Callable[..., Any]


def run_fetch(
    job: CdrJob,
    *,
    table: Any,
    get_call: Callable[[str], dict[str, Any]],
    enqueue: Enqueue,
    policy: FetchPolicy,
    now: Callable[[], str] = store.now_iso,
) -> Outcome:
    """Run one fetch job against our table and the platform.

    Args:
        job: the parsed message (``cdr_jobs.parse_message``).
        table: the calls table.
        get_call: fetches the platform CDR (``SautikitClient.get_call``).
        enqueue: ``enqueue_cdr_fetch(call_id, *, delay_seconds, attempt)``.
        policy: backoff and bounds.
        now: clock for ``fetched_at``.

    Raises:
        RedeliverError: transient failure; the caller fails the SQS record.
    """
    ours = store.get_call(table, job.call_id)
    if ours is None:
        return Outcome("dropped", detail="call not in our table")
    existing = ours.get("cdr") or {}
    if existing.get("fetch_state") == STATE_DONE:
        return Outcome("duplicate", STATE_DONE, "already fetched")
    if existing.get("fetch_state") == STATE_QUEUED and existing.get("attempts", 0) > job.attempt:
        # A redelivered copy of a job that already re-enqueued its successor.
        return Outcome("duplicate", STATE_QUEUED, f"attempt {job.attempt} is stale")
    fetched_at = now()
    try:
        call = get_call(job.call_id)
    except SautikitApiError as exc:
        age = job_age_seconds(job, fetched_at)
        decision = decide_on_error(exc, job.attempt, policy, fetched_at=fetched_at, age_seconds=age)
    else:
        decision = decide_on_call(call, job.attempt, policy, fetched_at=fetched_at)
    if isinstance(decision, Redeliver):
        raise RedeliverError(decision.reason)
    if isinstance(decision, Retry):
        # Record first: if enqueueing then fails, the redelivered job (same attempt) is not
        # stale and retries; enqueueing first could leave two jobs for one call.
        store.record_cdr(table, job.call_id, decision.cdr)
        enqueue(
            job.call_id,
            delay_seconds=decision.delay_seconds,
            attempt=decision.attempt,
            first_queued_at=job.first_queued_at,
        )
        return Outcome(
            "retried", STATE_QUEUED, f"attempt {decision.attempt} in {decision.delay_seconds} s"
        )
    store.record_cdr(table, job.call_id, decision.cdr)
    status = decision.cdr.get("status")
    if ours.get("status") == store.STATUS_ACTIVE and status in TERMINAL_STATUSES:
        # The platform's record is the truth: a call whose hangup we never saw is over.
        store.mark_ended(
            table,
            job.call_id,
            reason=f"cdr:{status}",
            duration_seconds=decision.cdr.get("duration_seconds"),
        )
        store.set_handoff_state(
            table,
            job.call_id,
            expected=store.HANDOFF_PENDING,
            state="stranded",
            detail="the call ended before the handoff was dialled",
        )
    return Outcome("stored", decision.cdr["fetch_state"], decision.cdr.get("error") or "")


def job_age_seconds(job: CdrJob, now_iso: str) -> float:
    """Seconds between the job's first queueing and ``now_iso`` (0 when unknown)."""
    try:
        first = datetime.fromisoformat(job.first_queued_at.replace("Z", "+00:00"))
        current = datetime.fromisoformat(now_iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (current - first).total_seconds())


def mark_failed(table: Any, call_id: str, reason: str, *, attempts: int, at: str) -> None:
    """Record on the call that its CDR fetch is abandoned (the job goes to the dead letters)."""
    store.record_cdr(
        table, call_id, _error_cdr(STATE_FAILED, reason[:500], attempts=attempts, fetched_at=at)
    )
