"""Reads and writes of the calls table, shared by the Lambda functions and the media node.

Every function takes a boto3 ``Table`` resource, so callers choose the table (and tests use
moto). Writes that webhooks may repeat are conditional, which makes retries harmless. Numbers
come back as ``int``/``float`` (never ``Decimal``) so records serialise to JSON as they are.

The call record (``call_record``) has the shape documented in the README:
``call_id, from, to, status, started_at, ended_at, handoff, transcript, metrics, cdr`` plus
``stream``, ``media`` and ``events``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from mapokezi import handoff as handoffs
from mapokezi import keys
from mapokezi.profiles import Profile, parse_profile

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class CallStatus(StrEnum):
    """``status`` of a call record."""

    ACTIVE = "active"
    ENDED = "ended"


STATUS_ACTIVE, STATUS_ENDED = CallStatus.ACTIVE, CallStatus.ENDED
HANDOFF_PENDING, HANDOFF_DIALLED = handoffs.HandoffState.PENDING, handoffs.HandoffState.DIALLED
#: What an ``incomplete`` record lacks when no first voice POST of the call was recorded.
MISSING_FIRST_ANSWER = "first_answer"


class CursorError(ValueError):
    """A pagination cursor could not be decoded."""


def now_iso(at: float | None = None) -> str:
    """UTC ISO-8601 timestamp with milliseconds, e.g. ``2026-11-21T09:30:00.123Z``."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expiry(days: int, at: float | None = None) -> int:
    """TTL value (epoch seconds) ``days`` from ``at``."""
    return int((time.time() if at is None else at) + days * 86400)


def to_dynamo(value: Any) -> Any:
    """Convert floats (recursively) to Decimal, as DynamoDB requires."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Convert Decimals (recursively) back to int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _update(
    table: Table, call_id: str, expression: str, values: Mapping[str, Any], **kw: Any
) -> bool:
    """UpdateItem on an existing call record; False when the condition did not hold."""
    condition = "attribute_exists(pk)"
    if "condition" in kw:
        condition = f"{condition} AND ({kw.pop('condition')})"
    try:
        table.update_item(
            Key=keys.call_key(call_id),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeValues=to_dynamo(dict(values)),
            **kw,
        )
    except ClientError as exc:
        if _conditional_failed(exc):
            return False
        raise
    return True


def _set(table: Table, call_id: str, attribute: str, value: Any) -> bool:
    """SET one top-level attribute of an existing call record (names may be reserved words)."""
    return _update(
        table, call_id, "SET #a = :v", {":v": value}, ExpressionAttributeNames={"#a": attribute}
    )


# --- call records -----------------------------------------------------------------------


def create_call(
    table: Table,
    *,
    call_id: str,
    caller: str,
    to: str,
    retention_days: int,
    attributes: Mapping[str, Any] | None = None,
    at: float | None = None,
) -> bool:
    """Create the call record unless it exists; True when this call created it."""
    started = now_iso(at)
    item = {
        **keys.call_key(call_id),
        **keys.call_index_attributes(call_id=call_id, to=to, caller=caller, started_at=started),
        "call_id": call_id,
        "from": caller,
        "to": to,
        "status": STATUS_ACTIVE,
        "started_at": started,
        "stream": {"state": "pending", "updated_at": started},
        keys.TTL_ATTRIBUTE: expiry(retention_days, at),
        **(attributes or {}),
    }
    try:
        table.put_item(Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if _conditional_failed(exc):
            return False
        raise
    session_id = item.get("session_id")
    if session_id and session_id != call_id:
        # Later POSTs may carry only the PBX session id; this lets find_call resolve it.
        alias = {**keys.session_alias_key(session_id), "call_id": call_id}
        table.put_item(Item={**alias, keys.TTL_ATTRIBUTE: item[keys.TTL_ATTRIBUTE]})
    return True


def find_call(
    table: Table, call_id: str, session_id: str | None = None
) -> tuple[str, dict[str, Any] | None]:
    """The call a webhook means: by its call id, else through its PBX session id's alias.

    Returns the call id the record is keyed on (``call_id`` when nothing is found) and the
    record, or None.
    """
    call = get_call(table, call_id)
    if call is not None or not session_id:
        return call_id, call
    alias = table.get_item(Key=keys.session_alias_key(session_id)).get("Item")
    if not alias:
        return call_id, None
    return str(alias["call_id"]), get_call(table, str(alias["call_id"]))


def get_call(table: Table, call_id: str) -> dict[str, Any] | None:
    """The raw call record item (strongly consistent), or None."""
    item = table.get_item(Key=keys.call_key(call_id), ConsistentRead=True).get("Item")
    return from_dynamo(item) if item else None


def set_stream_token(table: Table, call_id: str, nonce: str) -> bool:
    """Remember the nonce of the token just minted; only that token may open the media socket."""
    return _set(table, call_id, "stream_token", {"nonce": nonce, "minted_at": now_iso()})


def claim_stream_token(table: Table, call_id: str, nonce: str, node_id: str) -> bool:
    """Claim the call's stream token once; False if it is foreign, unknown or already used."""
    return _update(
        table,
        call_id,
        "SET stream_token.claimed_at = :at, stream_token.node_id = :node",
        {":at": now_iso(), ":node": node_id, ":n": nonce},
        condition="stream_token.nonce = :n AND attribute_not_exists(stream_token.claimed_at)",
    )


def claim_first_answer(
    table: Table,
    call_id: str,
    answer: str,
    *,
    reason: str | None = None,
    stream_token: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Record the kind of the call's first answer once; return the call record as it stands.

    Concurrent or retried first POSTs race on this conditional write: the first one wins, and
    every other reads back its ``answer`` (and ``stream_token``), so all of them answer alike.
    ``answer`` is ``stream``, ``fallback``, ``after_hours`` or ``unknown_number``.
    """
    values: dict[str, Any] = {":a": answer, ":at": now_iso()}
    expression = "SET #answer = :a, answered_at = :at"
    if reason:
        expression += ", answer_reason = :r"
        values[":r"] = reason
    if stream_token is not None:
        expression += ", stream_token = :t"
        values[":t"] = dict(stream_token)
    try:
        result = table.update_item(
            Key=keys.call_key(call_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#answer)",
            ExpressionAttributeNames={"#answer": "answer"},
            ExpressionAttributeValues=to_dynamo(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if not _conditional_failed(exc):
            raise
        return get_call(table, call_id) or {}
    record: dict[str, Any] = from_dynamo(result["Attributes"])
    return record


def renew_stream_token(table: Table, call_id: str, nonce: str, expires_at: int) -> bool:
    """Move an unclaimed token's expiry (a retry long after the first answer); False if it was
    claimed or replaced meanwhile."""
    return _update(
        table,
        call_id,
        "SET stream_token.expires_at = :e",
        {":e": expires_at, ":n": nonce},
        condition="stream_token.nonce = :n AND attribute_not_exists(stream_token.claimed_at)",
    )


def mark_incomplete(table: Table, call_id: str, missing: Iterable[str]) -> bool:
    """Say that parts of the call were never recorded (the table was unreachable then)."""
    return _update(
        table,
        call_id,
        "SET incomplete = :i",
        {":i": {"missing": sorted(set(missing)), "noted_at": now_iso()}},
        condition="attribute_not_exists(incomplete)",
    )


def set_stream_state(
    table: Table, call_id: str, state: str, *, error: str | None = None, sid: str | None = None
) -> bool:
    """Record the media stream's state (``started``, ``stopped`` or ``error``)."""
    stream: dict[str, Any] = {"state": state, "updated_at": now_iso()}
    if error:
        stream["error"] = error[:1000]
    if sid:
        stream["sid"] = sid
    return _set(table, call_id, "stream", stream)


def mark_ended(
    table: Table, call_id: str, *, reason: str, duration_seconds: int | None = None
) -> bool:
    """Mark the call ended; True only for the first end (repeat hangup POSTs change nothing)."""
    values: dict[str, Any] = {":ended": STATUS_ENDED, ":at": now_iso(), ":why": reason}
    expression = "SET #status = :ended, ended_at = :at, end_reason = :why"
    if duration_seconds is not None:
        expression += ", platform_duration_seconds = :d"
        values[":d"] = duration_seconds
    return _update(
        table,
        call_id,
        expression,
        values,
        condition="attribute_not_exists(ended_at)",
        ExpressionAttributeNames={"#status": "status"},
    )


def record_media(table: Table, call_id: str, media: Mapping[str, Any]) -> bool:
    """Record the media node's view of the call (node id, outcome, closed_at, …)."""
    return _set(table, call_id, "media", dict(media))


def record_handoff(
    table: Table, call_id: str, handoff: Mapping[str, Any], *, state: str = HANDOFF_PENDING
) -> bool:
    """Write a handoff: ``kind`` (transfer/hangup), ``target``, ``reason``, ``summary``.

    ``state`` is ``pending`` when the webhook (dial) or a rescue will act on it, or
    ``requested`` when the media node asks for a supervision itself (``path`` ``supervise``).
    Each handoff gets a ``handoff_id`` (the supervision's Idempotency-Key derives from it).
    """
    at = now_iso()
    item = {
        "handoff_id": uuid.uuid4().hex,
        **handoff,
        "state": state,
        "requested_at": at,
        "changes": [{"state": state, "at": at}],
    }
    return _set(table, call_id, "handoff", item)


def record_handoff_change(
    table: Table,
    call_id: str,
    change: Mapping[str, Any],
    fields: Mapping[str, Any] | None = None,
    *,
    handoff_id: str | None = None,
) -> bool:
    """Append a state change (``mapokezi.handoff.state_change``) to the call's handoff and set
    ``handoff.state`` to it; ``fields`` (e.g. ``supervision_id``, ``time_to_person_ms``) are
    set alongside.

    Each step of a supervision is recorded once: the media node and the events function both
    report it, so the write is conditional on the handoff being in a state the step may follow
    (``mapokezi.handoff.STEP_FOLLOWS``), and whichever writer comes second changes nothing
    (its ``fields`` included). With ``handoff_id`` the write applies only to that handoff, so
    a late report never lands on a newer one. False when nothing was written: no handoff, or
    the step was already taken.
    """
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets: list[str] = []
    conditions = ["attribute_exists(handoff)"]
    if change:
        state = str(change["state"])
        names["#state"] = "state"
        values.update({":state": state, ":change": [dict(change)], ":none": []})
        sets += [
            "handoff.#state = :state",
            "handoff.changes = list_append(if_not_exists(handoff.changes, :none), :change)",
        ]
        follows = handoffs.STEP_FOLLOWS.get(state)
        if follows is not None:
            placeholders = []
            for i, previous in enumerate(sorted(follows)):
                values[f":from{i}"] = str(previous)
                placeholders.append(f":from{i}")
            conditions.append(f"handoff.#state IN ({', '.join(placeholders)})")
    if handoff_id is not None:
        values[":handoff_id"] = handoff_id
        conditions.append("handoff.handoff_id = :handoff_id")
    for i, (name, value) in enumerate((fields or {}).items()):
        names[f"#f{i}"] = name
        values[f":f{i}"] = value
        sets.append(f"handoff.#f{i} = :f{i}")
    if not sets:
        return True
    return _update(
        table,
        call_id,
        "SET " + ", ".join(sets),
        values,
        condition=" AND ".join(conditions),
        ExpressionAttributeNames=names,
    )


def claim_rescue(table: Table, call_id: str) -> dict[str, Any] | None:
    """Move a still-pending handoff to ``requested`` on the ``rescue`` path, exactly once.

    The condition (``state = pending``) makes concurrent or retried rescues of one handoff, and
    a late re-POST that dials it (:func:`take_pending_handoff`), exclude each other. Returns the
    handoff as it now is, or None when another writer took it first (or none was pending).
    """
    at = now_iso()
    try:
        result = table.update_item(
            Key=keys.call_key(call_id),
            UpdateExpression=(
                "SET handoff.#state = :requested, handoff.#path = :rescue, "
                "handoff.changes = list_append(if_not_exists(handoff.changes, :none), :change)"
            ),
            ConditionExpression="handoff.#state = :pending AND handoff.kind <> :hangup",
            ExpressionAttributeNames={"#state": "state", "#path": "path"},
            ExpressionAttributeValues={
                ":requested": handoffs.REQUESTED,
                ":rescue": handoffs.PATH_RESCUE,
                ":pending": HANDOFF_PENDING,
                ":hangup": "hangup",
                ":none": [],
                ":change": [{"state": handoffs.REQUESTED, "at": at, "reason": "rescue"}],
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if _conditional_failed(exc):
            return None
        raise
    handoff: dict[str, Any] = from_dynamo(result["Attributes"]["handoff"])
    return handoff


def take_pending_handoff(table: Table, call_id: str) -> dict[str, Any] | None:
    """Atomically move a pending handoff to ``dialled`` and return it; None if none was pending."""
    try:
        result = table.update_item(
            Key=keys.call_key(call_id),
            UpdateExpression=(
                "SET handoff.#state = :dialled, handoff.dialled_at = :at, "
                "handoff.#path = if_not_exists(handoff.#path, :dial), "
                "handoff.changes = list_append(if_not_exists(handoff.changes, :none), :change)"
            ),
            ConditionExpression="handoff.#state = :pending",
            ExpressionAttributeNames={"#state": "state", "#path": "path"},
            ExpressionAttributeValues={
                ":dialled": HANDOFF_DIALLED,
                ":pending": HANDOFF_PENDING,
                ":at": now_iso(),
                ":dial": handoffs.PATH_DIAL,
                ":none": [],
                ":change": [{"state": HANDOFF_DIALLED, "at": now_iso()}],
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if _conditional_failed(exc):
            return None
        raise
    handoff: dict[str, Any] = from_dynamo(result["Attributes"]["handoff"])
    return handoff


def record_message(table: Table, call_id: str, message: Mapping[str, Any]) -> bool:
    """Put a message taken during the call on its record (``message``; see mapokezi.messages)."""
    return _set(table, call_id, "message", dict(message))


def set_handoff_state(
    table: Table, call_id: str, *, expected: str, state: str, detail: str | None = None
) -> bool:
    """Move the handoff from ``expected`` to ``state`` (``stranded``, ``failed``…) once; the move
    is appended to ``handoff.changes`` like every other state change."""
    at = now_iso()
    change: dict[str, Any] = {"state": state, "at": at}
    if detail:
        change["reason"] = detail[:200]
    expression = (
        "SET handoff.#state = :s, handoff.state_at = :at, "
        "handoff.changes = list_append(if_not_exists(handoff.changes, :none), :change)"
    )
    values: dict[str, Any] = {
        ":s": state,
        ":e": expected,
        ":at": at,
        ":none": [],
        ":change": [change],
    }
    if detail:
        expression += ", handoff.state_detail = :d"
        values[":d"] = detail[:500]
    return _update(
        table,
        call_id,
        expression,
        values,
        condition="handoff.#state = :e",
        ExpressionAttributeNames={"#state": "state"},
    )


def put_metrics(table: Table, call_id: str, metrics: Mapping[str, Any]) -> bool:
    """Store the media node's metrics for the call (replaces earlier ones)."""
    return _set(table, call_id, "metrics", dict(metrics))


def add_turns(
    table: Table, call_id: str, turns: Iterable[Mapping[str, Any]], retention_days: int
) -> int:
    """Store transcript turns (each has ``role``, ``text``, ``at_ms``, optional extras)."""
    count = 0
    ttl = expiry(retention_days)
    with table.batch_writer() as batch:
        for seq, turn in enumerate(turns):
            item = {**keys.turn_key(call_id, int(turn["at_ms"]), seq), **turn}
            batch.put_item(Item=to_dynamo({**item, keys.TTL_ATTRIBUTE: ttl}))
            count += 1
    return count


def record_cdr(table: Table, call_id: str, cdr: Mapping[str, Any]) -> bool:
    """Store the platform's call detail record (status, duration, cost, …) on the call."""
    return _set(table, call_id, "cdr", dict(cdr))


def record_event(
    table: Table,
    call_id: str,
    *,
    source: str,
    dedupe_key: str,
    payload: Mapping[str, Any],
    retention_days: int,
) -> bool:
    """Store one webhook delivery once; False when this delivery was already recorded."""
    item = {
        **keys.event_key(call_id, source, dedupe_key),
        "source": source,
        "received_at": now_iso(),
        "payload": dict(payload),
        keys.TTL_ATTRIBUTE: expiry(retention_days),
    }
    try:
        table.put_item(Item=to_dynamo(item), ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if _conditional_failed(exc):
            return False
        raise
    return True


def call_record(table: Table, call_id: str) -> dict[str, Any] | None:
    """The whole record of a call, as the query API and the CLI return it, or None."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": Key(keys.PK).eq(keys.call_partition(call_id)),
        "ConsistentRead": True,
    }
    while True:
        page = table.query(**kwargs)
        items.extend(from_dynamo(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    call = next((i for i in items if keys.item_kind(i[keys.SK]) == "call"), None)
    if call is None:
        return None
    record = _public(call)
    record["transcript"] = [_strip(i) for i in items if keys.item_kind(i[keys.SK]) == "turn"]
    record["events"] = [
        {"source": i["source"], "received_at": i["received_at"], **i.get("payload", {})}
        for i in items
        if keys.item_kind(i[keys.SK]) == "event"
    ]
    return record


def delete_call(table: Table, call_id: str) -> int:
    """Delete every item of a call (record, transcript turns, events) and its session alias.

    Returns how many items were deleted (0 when the call is unknown). Used to honour a
    caller's request to erase their data.
    """
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": Key(keys.PK).eq(keys.call_partition(call_id)),
        "ProjectionExpression": "#pk, #sk, session_id",
        "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK},
        "ConsistentRead": True,
    }
    found: list[dict[str, Any]] = []
    while True:
        page = table.query(**kwargs)
        found.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    doomed = [{keys.PK: i[keys.PK], keys.SK: i[keys.SK]} for i in found]
    for item in found:
        if item.get("session_id") and keys.item_kind(item[keys.SK]) == "call":
            doomed.append(keys.session_alias_key(str(item["session_id"])))
    with table.batch_writer() as batch:
        for key in doomed:
            batch.delete_item(Key=key)
    return len(found)


_INTERNAL = {
    keys.PK,
    keys.SK,
    keys.TTL_ATTRIBUTE,
    "stream_token",
    *(a for p in keys.INDEXES.values() for a in p),
}


def _strip(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _INTERNAL}


def _public(call: Mapping[str, Any]) -> dict[str, Any]:
    record = _strip(call)
    for name in ("ended_at", "handoff", "cdr"):
        record.setdefault(name, None)
    record.setdefault("metrics", {})
    return record


# --- listing ---------------------------------------------------------------------------


def encode_cursor(last_key: Mapping[str, Any]) -> str:
    """Opaque cursor for the next page."""
    return base64.urlsafe_b64encode(json.dumps(from_dynamo(dict(last_key))).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Inverse of :func:`encode_cursor`; :class:`CursorError` when tampered or truncated."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError(f"invalid cursor ({exc})") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CursorError("invalid cursor")
    return value


def query_calls(
    table: Table,
    *,
    number: str | None = None,
    caller: str | None = None,
    since: str | None = None,
    until: str | None = None,
    status: str | None = None,
    handoffs_only: bool = False,
    limit: int = 25,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """List call records newest first with optional filters; returns (calls, next cursor).

    ``since``/``until`` are ISO-8601 UTC timestamps compared with ``started_at``. With only a
    caller filter the caller index is used, otherwise the number index or the all-calls index.
    A page may hold fewer than ``limit`` calls when filters drop items; follow the cursor.
    """
    if number:
        index, partition = keys.INDEX_BY_NUMBER, keys.index_partition(keys.INDEX_BY_NUMBER, number)
    elif caller:
        index, partition = keys.INDEX_BY_CALLER, keys.index_partition(keys.INDEX_BY_CALLER, caller)
    else:
        index, partition = keys.INDEX_BY_TIME, keys.index_partition(keys.INDEX_BY_TIME)
    pk_attr, sk_attr = keys.INDEXES[index]
    condition: ConditionBase = Key(pk_attr).eq(partition)
    if since and until:
        condition &= Key(sk_attr).between(since, until + "~")
    elif since:
        condition &= Key(sk_attr).gte(since)
    elif until:
        condition &= Key(sk_attr).lte(until + "~")
    filters: list[ConditionBase] = []
    if number and caller:
        filters.append(Attr("from").eq(caller))
    if status:
        filters.append(Attr("status").eq(status))
    if handoffs_only:
        filters.append(Attr("handoff").exists())
    kwargs: dict[str, Any] = {
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if filters:
        combined = filters[0]
        for extra in filters[1:]:
            combined &= extra
        kwargs["FilterExpression"] = combined
    if cursor:
        kwargs["ExclusiveStartKey"] = decode_cursor(cursor)
    page = table.query(**kwargs)
    calls = [_public(from_dynamo(item)) for item in page.get("Items", [])]
    last = page.get("LastEvaluatedKey")
    return calls, encode_cursor(last) if last else None


# --- profiles ---------------------------------------------------------------------------


def put_profile(table: Table, profile: Profile) -> None:
    """Store a validated profile for its number (replacing any previous one)."""
    table.put_item(
        Item={
            **keys.profile_key(profile.number),
            "number": profile.number,
            "profile": json.dumps(profile.to_dict(), ensure_ascii=False),
            "updated_at": now_iso(),
        }
    )


def get_profile(table: Table, number: str) -> Profile | None:
    """The profile of a dialled number, or None when the number is unknown."""
    item = table.get_item(Key=keys.profile_key(number)).get("Item")
    stored = item.get("profile") if item else None
    if not isinstance(stored, str):
        return None
    return parse_profile(json.loads(stored), number=number)


def learn_platform_behaviour(table: Table, number: str, behaviour: str, *, call_id: str) -> None:
    """Remember what the platform did after a stream ended on ``number`` (the latest wins).

    ``behaviour`` is ``mapokezi.handoff.LEARNED_REPOSTS`` or ``LEARNED_NO_REPOST``; a count per
    behaviour is kept so the operator sees how often each was seen.
    """
    if behaviour not in (handoffs.LEARNED_REPOSTS, handoffs.LEARNED_NO_REPOST):
        raise ValueError(f"unknown platform behaviour {behaviour!r}")
    table.update_item(
        Key=keys.learned_key(number),
        UpdateExpression=(
            "SET after_stream = :b, learned_at = :at, from_call = :c, #n = :number ADD #seen :one"
        ),
        ExpressionAttributeNames={"#n": "number", "#seen": f"seen_{behaviour}"},
        ExpressionAttributeValues={
            ":b": behaviour,
            ":at": now_iso(),
            ":c": call_id,
            ":number": number,
            ":one": 1,
        },
    )


def platform_behaviour(table: Table, number: str) -> dict[str, Any] | None:
    """What was learned for ``number``: ``after_stream``, ``learned_at``, ``from_call``,
    ``seen_reposts``/``seen_no_repost`` counts; None when nothing was learned yet."""
    item = table.get_item(Key=keys.learned_key(number)).get("Item")
    if not item:
        return None
    return {k: v for k, v in from_dynamo(item).items() if k not in (keys.PK, keys.SK)}


# --- media node heartbeats --------------------------------------------------------------


def put_heartbeat(
    table: Table,
    node_id: str,
    *,
    active_calls: int,
    capacity: int,
    draining: bool,
    ttl_seconds: int = 120,
) -> None:
    """Record that media node ``node_id`` is alive, with its load."""
    now = time.time()
    table.put_item(
        Item={
            **keys.node_key(node_id),
            "node_id": node_id,
            "active_calls": active_calls,
            "capacity": capacity,
            "draining": draining,
            "seen_at": Decimal(str(round(now, 3))),
            keys.TTL_ATTRIBUTE: int(now + ttl_seconds),
        }
    )


def healthy_nodes(
    table: Table, max_age_seconds: int, *, now: float | None = None
) -> list[dict[str, Any]]:
    """Nodes seen in the last ``max_age_seconds`` that are not draining and have room."""
    cutoff = Decimal(str((time.time() if now is None else now) - max_age_seconds))
    page = table.query(
        KeyConditionExpression=Key(keys.PK).eq(keys.nodes_partition()),
        FilterExpression=Attr("seen_at").gte(cutoff),
    )
    nodes = [from_dynamo(i) for i in page.get("Items", [])]
    return [n for n in nodes if not n["draining"] and n["active_calls"] < n["capacity"]]
