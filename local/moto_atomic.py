"""Make moto's DynamoDB writes atomic, as DynamoDB's are.

DynamoDB evaluates a write's ``ConditionExpression`` and applies the write as one atomic step,
which is what exactly-once claims (a rescue, a dial) rely on. moto checks the condition and then
writes without a lock, so two threads can both pass the same condition. This wraps moto's write
operations in one process-wide lock, giving the local stack and the tests DynamoDB's guarantee
(and nothing more: reads are not serialised, and our code is not changed).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_installed = False


def install() -> None:
    """Serialise moto's DynamoDB writes (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))
    _installed = True
