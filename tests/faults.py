"""Failures injected at the boto3 client, so the code under test sees exactly what botocore
raises when DynamoDB (moto here) is unreachable or refuses a request."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from mapokezi import config

_ids = itertools.count()


def unreachable() -> Exception:
    """What botocore raises when the endpoint cannot be reached."""
    return EndpointConnectionError(endpoint_url="https://dynamodb.af-south-1.amazonaws.com")


def throttled(operation: str = "PutItem") -> Exception:
    """What DynamoDB answers when the table is throttled beyond the SDK's retries."""
    error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}
    return ClientError({"Error": error}, operation)


@contextmanager
def dynamodb_failing(
    operations: Iterable[str] | None = None, error: Exception | None = None
) -> Iterator[list[str]]:
    """Make the shared DynamoDB client raise ``error`` for ``operations`` (all when None).

    Yields the list of operation names that were refused, in order.
    """
    client: Any = config.dynamodb_table("any").meta.client
    refused: list[str] = []
    names = [f"before-call.dynamodb.{op}" for op in operations] if operations else None
    unique = f"fault-{next(_ids)}"

    def fail(model: Any, **_kwargs: Any) -> None:
        refused.append(model.name)
        raise error or unreachable()

    for name in names or ["before-call.dynamodb"]:
        client.meta.events.register(name, fail, unique_id=f"{unique}-{name}")
    try:
        yield refused
    finally:
        for name in names or ["before-call.dynamodb"]:
            client.meta.events.unregister(name, unique_id=f"{unique}-{name}")
