"""Make moto's DynamoDB operations atomic, as DynamoDB's are.

DynamoDB evaluates a write's ``ConditionExpression`` and applies the write as one atomic step,
which is what exactly-once claims (a rescue, a dial) rely on, and a read never sees a write half
done. moto keeps its tables in plain dictionaries without a lock: two threads can both pass the
same condition, and a query that iterates a table while another thread writes to it fails with
"dictionary changed size during iteration" (the media node writes from worker threads). Both
moto's backend and its request handler (which turns the items into the response, outside the
backend) are wrapped in one process-wide lock per item operation, giving the local stack and the
tests DynamoDB's guarantee and nothing more: our code is not changed.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_get_items",
)
_installed = False


def install() -> None:
    """Serialise moto's DynamoDB item operations (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    for cls in (DynamoDBBackend, DynamoHandler):
        for name in _OPERATIONS:
            original = getattr(cls, name, None)
            if original is None:
                continue

            def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
                with _LOCK:
                    return __original(self, *args, **kwargs)

            setattr(cls, name, functools.wraps(original)(locked))
    _installed = True
