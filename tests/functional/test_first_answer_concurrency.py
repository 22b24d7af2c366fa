"""Concurrent and retried first POSTs of one call: one record, one answer, one working token.

Each thread runs the voice flow with its own boto3 session, client and table resource against
one moto backend. DynamoDB makes every single request atomic; moto evaluates a conditional
write in several Python steps, so the threads take a lock around each *request* (never around
the flow): the requests of the threads still interleave freely, as API Gateway's parallel
invocations do.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from mapokezi import store, tokens
from serverless import voice_flow
from serverless.signature import sign_timestamped
from serverless.webhook import parse_voice_request
from tests.functional.test_voice_webhook import (
    BASE_URL,
    CALLER,
    MEDIA_URL,
    NUMBER,
    TOKEN_SECRET,
    UUID,
    WEBHOOK_SECRET,
    events_of,
    post,
    verbs,
)
from tests.functional.test_voice_webhook import table as table  # noqa: F401 (fixture)
from tests.functional.test_voice_webhook import voice_app as voice_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

THREADS = 8
SETTINGS = voice_flow.VoiceSettings(
    media_stream_url=MEDIA_URL, public_base_url=BASE_URL, stream_token_secret=TOKEN_SECRET
)
FIRST_POST = {"CallSid": UUID, "From": CALLER, "To": NUMBER}

_request_lock = threading.Lock()


class AtomicRequests:
    """A table resource whose every request is atomic, as DynamoDB's are."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        if not callable(attribute):
            return attribute

        def request(*args: Any, **kwargs: Any) -> Any:
            with _request_lock:
                return attribute(*args, **kwargs)

        return request


def own_table() -> Any:
    """A table resource on a session and client of this thread's own."""
    return AtomicRequests(boto3.session.Session().resource("dynamodb").Table(store_table_name()))


def store_table_name() -> str:
    import os

    return os.environ["CALLS_TABLE"]


def token_of(xml: str) -> str:
    import xml.etree.ElementTree as ET

    stream = ET.fromstring(xml)[0]
    return parse_qs(urlsplit(stream.get("url")).query)["token"][0]


def run_concurrently(count: int) -> list[voice_flow.VoiceAnswer]:
    barrier = threading.Barrier(count)

    def one_post(_: int) -> voice_flow.VoiceAnswer:
        table = own_table()
        request = parse_voice_request(FIRST_POST)
        barrier.wait()
        return voice_flow.handle_voice(request, table=table, settings=SETTINGS)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one_post, range(count)))


def test_concurrent_first_posts_make_one_record_and_one_token(table: Any) -> None:
    answers = run_concurrently(THREADS)
    assert {a.outcome for a in answers} == {voice_flow.STREAM}
    assert len({a.xml for a in answers}) == 1  # the same answer, the same token
    assert sum(a.call_created for a in answers) == 1
    record = store.get_call(table, UUID)
    claims = tokens.verify_stream_token(TOKEN_SECRET, token_of(answers[0].xml))
    assert record["stream_token"]["nonce"] == claims.nonce
    assert len(events_of(table)) == 1
    assert store.claim_stream_token(table, UUID, claims.nonce, "node-1")
    assert not store.claim_stream_token(table, UUID, claims.nonce, "node-2")


def test_concurrent_first_posts_without_a_node_all_fall_back_alike(table: Any) -> None:
    from mapokezi import keys

    table.delete_item(Key=keys.node_key("node-1"))
    answers = run_concurrently(THREADS)
    assert {a.outcome for a in answers} == {voice_flow.FALLBACK}
    assert len({a.xml for a in answers}) == 1
    assert store.get_call(table, UUID)["answer"] == "fallback"


def xml_of_text(response: dict[str, Any]) -> str:
    assert response["statusCode"] == 200
    return str(response["body"])


@pytest.fixture
def signed(table: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    return table


def test_replayed_signed_first_post_does_not_break_the_stream(signed: Any) -> None:
    from tests.events_factory import form_body

    raw = form_body(FIRST_POST)
    header = {"X-Sautikit-Signature": sign_timestamped(WEBHOOK_SECRET, raw, int(time.time()))}
    legitimate = post({}, raw=raw, headers=header, b64=True)
    replayed = post({}, raw=raw, headers=header, b64=True)  # inside the replay window
    assert xml_of_text(replayed) == xml_of_text(legitimate)
    claims = tokens.verify_stream_token(TOKEN_SECRET, token_of(xml_of_text(legitimate)))
    assert store.claim_stream_token(signed, UUID, claims.nonce, "node-1")  # still valid
    assert verbs(post({}, raw=raw, headers=header, b64=True)) == []  # after the claim
