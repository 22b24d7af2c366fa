"""Exactly one rescue per handoff, with every callback and every rescue check in its own process.

Lambda runs concurrent invocations in separate execution environments, so these do too: the
duplicate stream-stopped callbacks (stream-status and events) and then every rescue check they
queued run at once, each in a process of its own, against one moto server (DynamoDB, SQS) and
the Sautikit double. Only the conditional claim on the handoff keeps the person from being rung
twice.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble
from local.sqs_poller import sqs_event
from local.template import create_tables
from mapokezi import config, store
from mapokezi.profiles import parse_profile
from tests.events_factory import FORM, JSON, form_body, http_event, json_body

ROOT = Path(__file__).resolve().parents[2]
CALL = "6a1c1e0e-8d0e-4b6f-9a39-0b6a4f1f3c11"
NUMBER = "+254700000100"
PERSON = "+254711000002"
TABLE = "once-calls"


def _invoke(env: dict[str, str], module: str, event: dict[str, Any]) -> Any:
    """Run one Lambda handler in this (fresh) process, as one execution environment would."""
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
    import importlib

    from tests.events_factory import FakeLambdaContext

    handler = importlib.import_module(module).lambda_handler
    result = handler(event, FakeLambdaContext(module))
    return result.get("statusCode", result) if isinstance(result, dict) else result


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    config.reset_aws_clients()
    try:
        with SautikitApiDouble() as api:
            api.supervision.set_person(behaviour="manual", ring_after=0.01)
            sqs = boto3.client("sqs")
            queue = sqs.create_queue(QueueName="rescues")["QueueUrl"]
            create_tables(boto3.client("dynamodb"), {"CallsTable": TABLE})
            table = boto3.resource("dynamodb").Table(TABLE)
            profile = {
                "business_name": "Duka",
                "greeting": "Karibu",
                "instructions": "Help callers.",
                "front_desk": "+254711000001",
                "handoff": {"strategy": "auto", "rescue_grace_seconds": 0.5},
            }
            store.put_profile(table, parse_profile(profile, number=NUMBER))
            store.create_call(
                table, call_id=CALL, caller="+254722000111", to=NUMBER, retention_days=1
            )
            store.record_handoff(table, CALL, {"kind": "transfer", "target": PERSON, "reason": "x"})
            api.register_call(call_id=CALL, answered_at="2026-11-29T10:00:00Z")
            env = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "af-south-1",
                "CALLS_TABLE": TABLE,
                "RESCUE_QUEUE_URL": queue,
                "SAUTIKIT_API_URL": api.url,
                "SAUTIKIT_API_KEY": DEFAULT_API_KEY,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "MapokeziTest",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
            yield {"api": api, "sqs": sqs, "queue": queue, "table": table, "env": env}
    finally:
        moto.stop()
        config.reset_aws_clients()


def test_duplicate_callbacks_and_checks_in_parallel_ring_the_person_once(
    world: dict[str, Any],
) -> None:
    stopped = form_body({"CallSid": CALL, "StreamEvent": "stream-stopped", "StreamSid": "MZ1"})
    callbacks = [
        ("stream_status.app", http_event("/stream-status", stopped, content_type=FORM))
    ] * 3
    for i in range(3):
        body = json_body(
            {"kind": "StreamStopped", "event_id": f"evt_{i}", "data": {"call_id": CALL}}
        )
        callbacks.append(("events.app", http_event("/events", body, content_type=JSON)))
    with ProcessPoolExecutor(max_workers=len(callbacks), mp_context=get_context("spawn")) as pool:
        statuses = list(
            pool.map(_invoke, [world["env"]] * len(callbacks), *zip(*callbacks, strict=True))
        )
        assert statuses == [200] * len(callbacks)
        checks: list[dict[str, Any]] = []
        for _ in range(10):  # one per first delivery: stream-status once, each event once
            got = (
                world["sqs"]
                .receive_message(QueueUrl=world["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
                .get("Messages", [])
            )
            checks += got
            if len(checks) >= 4:
                break
        assert len(checks) == 4
        assert {json.loads(m["Body"])["step"] for m in checks} == {"check"}
        arn = "arn:aws:sqs:af-south-1:123456789012:rescues"
        events = [sqs_event([message], arn, "af-south-1") for message in checks]
        results = list(pool.map(_invoke, [world["env"]] * 4, ["rescue.app"] * 4, events))
    assert all(r == {"batchItemFailures": []} for r in results), results
    api = world["api"]
    posts = [r for r in api.requests if r.method == "POST" and r.path.endswith("/supervision")]
    assert len(posts) == 1
    handoff = store.get_call(world["table"], CALL)["handoff"]
    assert handoff["path"] == "rescue" and handoff["state"] in ("requested", "ringing")
    assert [c["state"] for c in handoff["changes"]][:2] == ["pending", "requested"]
    learned = store.platform_behaviour(world["table"], NUMBER)
    assert learned["seen_no_repost"] == 1
