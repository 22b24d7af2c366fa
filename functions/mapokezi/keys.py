"""The single table's keys: the only module that knows how items are addressed.

One DynamoDB table holds everything about calls. Items of one call share a partition, so a
single Query returns the call, its events and its transcript turns.

| item            | pk                | sk                         | notes                         |
|-----------------|-------------------|----------------------------|-------------------------------|
| call record     | ``CALL#<id>``     | ``CALL``                   | carries the three GSI keys    |
| call event      | ``CALL#<id>``     | ``EVENT#<source>#<key>``   | one per webhook delivery      |
| transcript turn | ``CALL#<id>``     | ``TURN#<at_ms>#<seq>``     | ordered by time in the call   |
| profile         | ``PROFILE#<e164>``| ``PROFILE``                | receptionist per dialled no.  |
| learned         | ``PROFILE#<e164>``| ``LEARNED``                | what the platform did there   |
| message         | ``MESSAGE#<id>``  | ``MESSAGE``                | carries two GSI keys          |
| node heartbeat  | ``NODES``         | ``NODE#<node id>``         | one partition lists all nodes |
| session alias   | ``SESSION#<HD_…>``| ``ALIAS``                  | PBX session id -> call id     |

Global secondary indexes (sparse: only call records carry their keys), newest first by
sorting on ``<started_at ISO>#<call id>`` and querying with ``ScanIndexForward=False``:
``by_number`` (dialled number), ``by_caller`` (caller number) and ``by_time`` (all calls).
Messages reuse two of them with partitions of their own, so they never mix with calls:
``by_number`` under ``MSGTO#<dialled number>`` and ``by_time`` under ``MESSAGES``.
"""

from __future__ import annotations

import hashlib
from typing import Final

PK: Final = "pk"
SK: Final = "sk"
TTL_ATTRIBUTE: Final = "expires_at"

INDEX_BY_NUMBER: Final = "by_number"
INDEX_BY_CALLER: Final = "by_caller"
INDEX_BY_TIME: Final = "by_time"

#: index name -> (partition attribute, sort attribute); template.yaml declares the same.
INDEXES: Final[dict[str, tuple[str, str]]] = {
    INDEX_BY_NUMBER: ("number_pk", "started_sk"),
    INDEX_BY_CALLER: ("caller_pk", "started_sk"),
    INDEX_BY_TIME: ("all_pk", "started_sk"),
}

_CALL_PREFIX: Final = "CALL#"
_CALL_SK: Final = "CALL"
_EVENT_PREFIX: Final = "EVENT#"
_TURN_PREFIX: Final = "TURN#"
_PROFILE_PREFIX: Final = "PROFILE#"
_NODES_PK: Final = "NODES"
_NODE_PREFIX: Final = "NODE#"
_ALL_CALLS: Final = "CALLS"
_MESSAGES_TO: Final = "MSGTO#"
_ALL_MESSAGES: Final = "MESSAGES"
#: Longest dedupe key kept as it is in an event's sort key.
MAX_DEDUPE_KEY_BYTES: Final = 256

Key = dict[str, str]


def call_key(call_id: str) -> Key:
    """Key of a call record."""
    return {PK: _CALL_PREFIX + call_id, SK: _CALL_SK}


def call_partition(call_id: str) -> str:
    """Partition value shared by a call record, its events and its turns."""
    return _CALL_PREFIX + call_id


def call_index_attributes(*, call_id: str, to: str, caller: str, started_at: str) -> dict[str, str]:
    """GSI attributes a call record carries so it can be listed by number, caller and time."""
    started = f"{started_at}#{call_id}"
    return {
        "number_pk": "TO#" + to,
        "caller_pk": "FROM#" + caller,
        "all_pk": _ALL_CALLS,
        "started_sk": started,
    }


def index_partition(index: str, value: str | None = None) -> str:
    """Partition value to query on ``index`` (``value`` is the number; unused for by_time)."""
    if index == INDEX_BY_NUMBER:
        return "TO#" + (value or "")
    if index == INDEX_BY_CALLER:
        return "FROM#" + (value or "")
    if index == INDEX_BY_TIME:
        return _ALL_CALLS
    raise ValueError(f"unknown index {index!r}")


def event_key(call_id: str, source: str, dedupe_key: str) -> Key:
    """Key of one recorded webhook delivery; the same delivery retried maps to the same key.

    A dedupe key longer than :data:`MAX_DEDUPE_KEY_BYTES` (a sender's field can be long, and
    DynamoDB caps a sort key at 1024 bytes) keeps its start and gets a digest of the whole.
    """
    raw = dedupe_key.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_DEDUPE_KEY_BYTES:
        start = raw[:64].decode("utf-8", "ignore")
        dedupe_key = f"{start}#sha256:{hashlib.sha256(raw).hexdigest()[:32]}"
    return {PK: _CALL_PREFIX + call_id, SK: f"{_EVENT_PREFIX}{source}#{dedupe_key}"}


def turn_key(call_id: str, at_ms: int, seq: int) -> Key:
    """Key of a transcript turn; zero-padded so turns sort by time within the call."""
    return {PK: _CALL_PREFIX + call_id, SK: f"{_TURN_PREFIX}{at_ms:010d}#{seq:04d}"}


def profile_key(number: str) -> Key:
    """Key of the receptionist profile for a dialled number (E.164)."""
    return {PK: _PROFILE_PREFIX + number, SK: "PROFILE"}


def learned_key(number: str) -> Key:
    """Key of what the platform was seen to do for a dialled number (next to its profile)."""
    return {PK: _PROFILE_PREFIX + number, SK: "LEARNED"}


def message_key(message_id: str) -> Key:
    """Key of a message taken for the business."""
    return {PK: "MESSAGE#" + message_id, SK: "MESSAGE"}


def message_index_attributes(*, message_id: str, to: str, created_at: str) -> dict[str, str]:
    """GSI attributes of a message: listed per dialled number and overall, newest first."""
    return {
        "number_pk": _MESSAGES_TO + to,
        "all_pk": _ALL_MESSAGES,
        "started_sk": f"{created_at}#{message_id}",
    }


def message_index_partition(index: str, number: str | None = None) -> str:
    """Partition to query for messages on ``by_number`` (one number) or ``by_time`` (all)."""
    if index == INDEX_BY_NUMBER:
        return _MESSAGES_TO + (number or "")
    if index == INDEX_BY_TIME:
        return _ALL_MESSAGES
    raise ValueError(f"messages are not listed on index {index!r}")


def session_alias_key(session_id: str) -> Key:
    """Key of the item mapping a PBX session id (``HD_…``) to the call id the call is keyed on."""
    return {PK: "SESSION#" + session_id, SK: "ALIAS"}


def node_key(node_id: str) -> Key:
    """Key of a media node's heartbeat."""
    return {PK: _NODES_PK, SK: _NODE_PREFIX + node_id}


def nodes_partition() -> str:
    """Partition listing every media node heartbeat."""
    return _NODES_PK


def item_kind(sk: str) -> str:
    """Classify an item of a call partition by its sort key: call, event, turn or other."""
    if sk == _CALL_SK:
        return "call"
    if sk.startswith(_EVENT_PREFIX):
        return "event"
    if sk.startswith(_TURN_PREFIX):
        return "turn"
    return "other"


def call_id_from_partition(pk: str) -> str:
    """Inverse of :func:`call_partition`."""
    if not pk.startswith(_CALL_PREFIX):
        raise ValueError(f"not a call partition: {pk!r}")
    return pk[len(_CALL_PREFIX) :]
