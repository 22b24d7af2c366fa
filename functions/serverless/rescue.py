"""Rescue from the Lambda side: a transfer whose stream stopped and the platform never came back.

With ``handoff.strategy: auto`` the media node closes the stream after writing a pending handoff
and the voice webhook dials it when the platform re-POSTs ``StreamStopped``. On some numbers the
platform does not re-POST (``reference/sautikit.md`` §1b), and the caller would sit in silence.
So when a stream-stopped callback (``/stream-status`` or ``/events``) finds a pending handoff, a
*check* is queued on the rescue queue after the profile's grace period. If the handoff is still
pending then, the check claims it (a conditional write: one rescue per handoff however often
the callbacks are retried or race), remembers that this number does not re-POST (its next
handoffs supervise straight away), and asks for a ``barge`` supervision to the same person.
*Follow* jobs then poll the supervision (``mapokezi.handoff.SupervisionTracker`` decides) until
it ends, recording each state change.

No model is on the line any more, so when nobody answers, or the person leaves, the call is
hung up rather than left silent, and the business is notified of the missed caller on the
messages topic so someone calls back. A call whose person stays on is hung up once they have
talked for the profile's ``handoff.max_bridged_seconds`` (noticed at the next follow-up).

Message body (JSON): ``{"call_id": str, "step": "check" | "follow", "attempt": int}``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from mapokezi import config, messages, store
from mapokezi import handoff as h
from mapokezi.config import ConfigError
from mapokezi.profiles import E164, HandoffSettings, Profile
from mapokezi.sautikit_api import SautikitApiError, phone_supervisor

logger = Logger(child=True)

STEP_CHECK = "check"
STEP_FOLLOW = "follow"
#: How often a rescue looks at a connected person (only to see them leave); the environment's
#: ``RESCUE_CONNECTED_POLL_SECONDS`` overrides it.
CONNECTED_FOLLOW_SECONDS = 30.0
MAX_FOLLOW_SECONDS = 900  # SQS's longest delay
#: A claim this old with no supervision asked for was left by an invocation that died (the
#: rescue function times out after 30 s); younger ones belong to an invocation still at work.
STALE_CLAIM_SECONDS = 60.0


@dataclass(frozen=True)
class RescueJob:
    """One queued rescue step."""

    call_id: str
    step: str = STEP_CHECK
    attempt: int = 0


@dataclass
class RescueOutcome:
    """What a step did: ``action`` for logs, plus the tracker's decisions (for metrics)."""

    action: str
    decisions: list[h.Decision] = field(default_factory=list)


def message_body(job: RescueJob) -> str:
    """The JSON body of a rescue message."""
    return json.dumps(
        {"call_id": job.call_id, "step": job.step, "attempt": job.attempt}, separators=(",", ":")
    )


def parse_message(body: str) -> RescueJob:
    """Read a rescue message body.

    Raises:
        ValueError: not JSON, or a field missing or of the wrong type.
    """
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("rescue job must be a JSON object")
    call_id, step, attempt = data.get("call_id"), data.get("step"), data.get("attempt", 0)
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("rescue job has no call_id")
    if step not in (STEP_CHECK, STEP_FOLLOW):
        raise ValueError("rescue job step must be check or follow")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError("rescue job attempt must be a whole number >= 0")
    return RescueJob(call_id, step, attempt)


@cache
def _sqs() -> Any:
    return config.aws_client("sqs")


def reset_client() -> None:
    """Forget the cached SQS client (tests switching moto mocks, or a new endpoint)."""
    _sqs.cache_clear()


def enqueue_rescue(job: RescueJob, *, delay_seconds: float, queue_url: str | None = None) -> str:
    """Queue ``job`` after ``delay_seconds`` (rounded up, clamped to SQS's 0..900).

    Raises:
        ConfigError: ``RESCUE_QUEUE_URL`` is not set.
    """
    url = queue_url or os.environ.get("RESCUE_QUEUE_URL", "")
    if not url:
        raise ConfigError("RESCUE_QUEUE_URL is not set; cannot queue the rescue")
    delay = max(0, min(MAX_FOLLOW_SECONDS, math.ceil(delay_seconds)))
    response = _sqs().send_message(QueueUrl=url, MessageBody=message_body(job), DelaySeconds=delay)
    return str(response["MessageId"])


Enqueue = Callable[..., Any]


# -- from the webhooks ------------------------------------------------------------------------


def on_stream_stopped(table: Any, call_id: str, *, enqueue: Enqueue = enqueue_rescue) -> bool:
    """A stream stopped: queue a rescue check if a transfer is pending and the number's
    strategy allows it. Returns whether a check was queued (never raises: a callback must ack)."""
    try:
        call = store.get_call(table, call_id)
        pending = (call or {}).get("handoff") or {}
        if pending.get("state") != store.HANDOFF_PENDING or pending.get("kind") == "hangup":
            return False
        profile = store.get_profile(table, str(call.get("to"))) if call else None
        settings = profile.handoff if profile else None
        if settings is None or not h.rescue_allowed(settings.strategy):
            return False
        enqueue(RescueJob(call_id, STEP_CHECK), delay_seconds=settings.rescue_grace_seconds)
    except Exception:
        logger.exception("could not queue a rescue check", extra={"call_id": call_id})
        return False
    logger.info("rescue check queued", extra={"call_id": call_id})
    return True


def learn_repost(table: Any, call: Mapping[str, Any]) -> None:
    """The platform re-POSTed the voice webhook after the stream: remember it for the number."""
    try:
        store.learn_platform_behaviour(
            table, str(call.get("to")), h.LEARNED_REPOSTS, call_id=str(call.get("call_id"))
        )
    except Exception:  # learning is a hint; the dial answer matters more
        logger.exception("could not record the re-POST", extra={"call_id": call.get("call_id")})


def apply_supervision_event(table: Any, call_id: str, kind: str, data: Mapping[str, Any]) -> bool:
    """Record a ``call.supervision.*`` event on the call's supervised handoff (any path).

    A step already recorded (by the node's or a rescue's poll) is not recorded twice, even when
    both report it at once (``store.record_handoff_change`` is conditional on the handoff's
    state). Returns whether it changed.
    """
    state = str(data.get("state") or kind.rsplit(".", 1)[-1])
    call = store.get_call(table, call_id)
    current = (call or {}).get("handoff") or {}
    if current.get("path") not in (h.PATH_SUPERVISE, h.PATH_RESCUE):
        return False
    ours = current.get("supervision_id")
    if ours and data.get("supervision_id") and data["supervision_id"] != ours:
        return False
    previous = current.get("state")
    if previous in h.TERMINAL:
        return False
    at = time.time()
    if state == "ringing" and previous == h.REQUESTED:
        change = h.state_change(h.RINGING, at)
    elif state == "connected" and previous != h.CONNECTED:
        change = h.state_change(h.CONNECTED, at)
        ms = h.time_to_person_ms(current.get("changes") or [], at)
        fields = {"time_to_person_ms": ms} if ms is not None else {}
        return store.record_handoff_change(
            table, call_id, change, fields, handoff_id=current.get("handoff_id")
        )
    elif state in ("ended", "failed"):
        reason = data.get("failure_reason") or data.get("reason")
        new, why = h.platform_outcome(state, reason, previous == h.CONNECTED)
        change = h.state_change(new, at, why)
    else:
        return False
    return store.record_handoff_change(table, call_id, change, handoff_id=current.get("handoff_id"))


# -- the rescue queue's consumer --------------------------------------------------------------


def run_job(
    job: RescueJob,
    *,
    table: Any,
    client: Any,
    enqueue: Enqueue = enqueue_rescue,
    now: Callable[[], float] = time.time,
    notify: Callable[[Mapping[str, Any], str], None] | None = None,
) -> RescueOutcome:
    """Run one rescue step.

    Args:
        job: the queued step.
        table: the calls table.
        client: a ``SautikitClient`` (supervision and hangup).
        enqueue: queues the next step (``enqueue_rescue``'s signature).
        now: epoch clock.
        notify: tells the business about a missed caller (default: the messages topic).
    """
    call = store.get_call(table, job.call_id)
    if call is None:
        return RescueOutcome("dropped")
    pending = call.get("handoff") or {}
    profile = store.get_profile(table, str(call.get("to")))
    policy = h.SupervisionPolicy.for_profile(profile.dial_timeout_seconds if profile else 30)
    rescue = _Rescue(job, call, table, client, enqueue, now, notify or notify_missed_caller)
    if job.step == STEP_CHECK and not _abandoned_claim(pending, now()):
        # A check redelivered after an invocation claimed the rescue and died before asking
        # for the supervision goes on below as a follow-up, which asks (same Idempotency-Key).
        if pending.get("state") != store.HANDOFF_PENDING:
            return RescueOutcome("not_needed")  # dialled after a re-POST, or already rescued
        if call.get("status") == store.STATUS_ENDED:
            return RescueOutcome("caller_gone")
        claimed = store.claim_rescue(table, job.call_id)
        if claimed is None:
            return RescueOutcome("not_needed")
        store.learn_platform_behaviour(
            table, str(call.get("to")), h.LEARNED_NO_REPOST, call_id=job.call_id
        )
        requested_at = now()
        tracker = h.SupervisionTracker(requested_at, policy)
        store.record_handoff_change(table, job.call_id, {}, {"rescue_requested_at": requested_at})
        logger.warning("rescuing a stranded transfer", extra={"call_id": job.call_id})
        return rescue.start(claimed, tracker, profile, "rescued")
    if pending.get("path") != h.PATH_RESCUE:
        return RescueOutcome("not_needed")
    tracker = h.SupervisionTracker.resume(
        float(pending.get("rescue_requested_at") or now()),
        str(pending.get("state")),
        pending.get("supervision_id"),
        policy,
        attempts=int(pending.get("rescue_attempts") or 1),
    )
    return rescue.follow(pending, tracker, profile)


def _abandoned_claim(pending: Mapping[str, Any], now: float) -> bool:
    if pending.get("path") != h.PATH_RESCUE or pending.get("supervision_id"):
        return False
    claimed_at = h.last_requested_at(pending.get("changes") or [])
    return claimed_at is None or now - claimed_at > STALE_CLAIM_SECONDS


class _Rescue:
    """One step's work on one call (kept together so the helpers share their arguments)."""

    def __init__(
        self,
        job: RescueJob,
        call: Mapping[str, Any],
        table: Any,
        client: Any,
        enqueue: Enqueue,
        now: Callable[[], float],
        notify: Callable[[Mapping[str, Any], str], None],
    ) -> None:
        self.job, self.call, self.table, self.client = job, call, table, client
        self.enqueue, self.now, self.notify = enqueue, now, notify

    def start(
        self,
        pending: Mapping[str, Any],
        tracker: h.SupervisionTracker,
        profile: Profile | None,
        action: str,
    ) -> RescueOutcome:
        target = str(pending.get("target") or "")
        if not E164.match(target) and profile is not None:
            target = profile.transfer_target(pending.get("department"))
        key = h.idempotency_key(self.job.call_id, str(pending.get("handoff_id") or ""))
        label = str(pending.get("department") or "Front desk")
        try:
            supervision = self.client.start_supervision(
                self.job.call_id, phone_supervisor(target, label), idempotency_key=key
            )
            decisions = tracker.started(self.now(), supervision.supervision_id, supervision.state)
        except SautikitApiError as exc:
            logger.warning(
                "rescue supervision refused",
                extra={"call_id": self.job.call_id, "status": exc.status, "code": exc.code},
            )
            decisions = tracker.start_failed(self.now(), exc.status, exc.code)
        return self.act(tracker, decisions, action)

    def follow(
        self, pending: Mapping[str, Any], tracker: h.SupervisionTracker, profile: Profile | None
    ) -> RescueOutcome:
        caller_gone = self.call.get("status") == store.STATUS_ENDED
        if tracker.finished:  # an event recorded the end before this poll
            if pending.get("rescue_closed"):
                return RescueOutcome("finished")
            if caller_gone:
                return self.act(tracker, [], "finished")
            told: h.Decision = (
                h.PersonLeft() if tracker.state == h.ENDED else h.NobodyAvailable(tracker.state)
            )
            return self.act(tracker, [*self._seen_connected(pending), told], "closed_after_event")
        if tracker.state == h.CONNECTED and not pending.get("rescue_connected_counted"):
            # An event reported the connection before any poll did: count it once, here.
            outcome = self.act(tracker, self._seen_connected(pending), "connected_by_event")
            return outcome
        at = self.now()
        if caller_gone:
            return self.act(tracker, tracker.caller_left(at), "caller_gone")
        if tracker.state == h.CONNECTED and self._bridged_too_long(pending, profile, at):
            ending = tracker.caller_left(at, h.BRIDGED_LIMIT)
            return self.act(tracker, ending, "bridged_limit", close_reason=h.BRIDGED_LIMIT)
        timed_out = tracker.tick(at)
        if timed_out:
            return self.act(tracker, timed_out, "timed_out")
        if tracker.supervision_id is None:  # the POST failed transiently: send it again
            return self.start(pending, tracker, profile, "retried")
        try:
            supervision = self.client.get_supervision(self.job.call_id)
        except SautikitApiError as exc:
            return self.act(tracker, tracker.poll_failed(at, exc.status, exc.code), "polled")
        if supervision is None:
            return self.act(tracker, tracker.gone(at), "polled")
        decisions = tracker.observed(at, supervision.state, supervision.failure_reason)
        return self.act(tracker, decisions, "polled")

    @staticmethod
    def _bridged_too_long(pending: Mapping[str, Any], profile: Profile | None, at: float) -> bool:
        """The caller and the person have talked for the profile's ``max_bridged_seconds``
        (noticed at the next follow-up, so up to one follow interval late)."""
        connected_at = h.last_change_at(pending.get("changes") or [], h.CONNECTED)
        limit = (profile.handoff if profile else HandoffSettings()).max_bridged_seconds
        return connected_at is not None and at - connected_at >= limit

    @staticmethod
    def _seen_connected(pending: Mapping[str, Any]) -> list[h.Decision]:
        """The connection an event recorded, for metrics, unless already counted."""
        was_connected = any(c.get("state") == h.CONNECTED for c in pending.get("changes") or [])
        if not was_connected or pending.get("rescue_connected_counted"):
            return []
        return [h.PersonConnected(int(pending.get("time_to_person_ms") or 0))]

    def act(
        self,
        tracker: h.SupervisionTracker,
        decisions: list[h.Decision],
        action: str,
        close_reason: str | None = None,
    ) -> RescueOutcome:
        call_id = self.job.call_id
        if any(isinstance(d, h.PersonConnected) for d in decisions):
            store.record_handoff_change(self.table, call_id, {}, {"rescue_connected_counted": True})
        for decision in decisions:
            if isinstance(decision, h.Record):
                store.record_handoff_change(
                    self.table,
                    call_id,
                    decision.change,
                    decision.fields,
                    handoff_id=(self.call.get("handoff") or {}).get("handoff_id"),
                )
            elif isinstance(decision, h.CancelSupervision):
                self._quietly("cancel the supervision", self.client.stop_supervision, call_id)
            elif isinstance(decision, h.NobodyAvailable | h.PersonLeft):
                close_reason = getattr(decision, "reason", "person_left")
        if close_reason is not None:
            self._close(close_reason, missed=close_reason not in ("person_left", h.BRIDGED_LIMIT))
        elif tracker.finished:  # ended with the caller gone: nothing to hang up
            store.record_handoff_change(self.table, call_id, {}, {"rescue_closed": True})
        else:
            store.record_handoff_change(
                self.table, call_id, {}, {"rescue_attempts": tracker.attempts}
            )
            deadline = tracker.next_deadline or self.now() + 1
            if tracker.state == h.CONNECTED:
                every = os.environ.get("RESCUE_CONNECTED_POLL_SECONDS")
                deadline = self.now() + (float(every) if every else CONNECTED_FOLLOW_SECONDS)
            self.enqueue(
                RescueJob(call_id, STEP_FOLLOW, self.job.attempt + 1),
                delay_seconds=max(1.0, deadline - self.now()),
            )
        return RescueOutcome(action, decisions)

    def _close(self, reason: str, *, missed: bool) -> None:
        """No model is on the line: end the call instead of leaving the caller in silence."""
        call_id = self.job.call_id
        self._quietly("hang up", self.client.hangup_call, call_id)
        if missed:
            self._quietly("notify the business", self.notify, self.call, reason)
        store.record_handoff_change(self.table, call_id, {}, {"rescue_closed": True})

    def _quietly(self, what: str, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception:  # each of these is best effort; the record says what happened
            logger.exception(f"rescue could not {what}", extra={"call_id": self.job.call_id})


def notify_missed_caller(call: Mapping[str, Any], reason: str) -> None:
    """Publish a missed-caller notice on the messages topic (when one is configured)."""
    arn = os.environ.get("MESSAGES_TOPIC_ARN", "")
    if not arn:
        return
    pending = call.get("handoff") or {}
    notice = messages.Message(
        message_id="missed-" + str(call.get("call_id")),
        call_id=str(call.get("call_id")),
        to=str(call.get("to")),
        caller=str(call.get("from")),
        name="A caller (transfer missed)",
        callback_number=str(call.get("from")),
        message=(
            f"Asked for a person ({pending.get('reason') or 'no reason given'}); the transfer "
            f"could not reach anyone ({reason}). Please call them back."
        ),
        urgency="high",
        created_at=store.now_iso(),
    )
    messages.publish(notice, topic_arn=arn)
