"""The node's supervised transfer against the Sautikit double (HTTP) and a moto table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble
from mapokezi import handoff as h
from mapokezi import store
from mapokezi.sautikit_api import SautikitClient
from media_node.supervision import SupervisedTransfer

CALL = "HD_node1"
PERSON = "+254711000002"
FAST = h.SupervisionPolicy(ring_timeout=5, first_poll=0.05, poll_backoff=1.5, max_poll=0.2)


@pytest.fixture
def api() -> Iterator[SautikitApiDouble]:
    with SautikitApiDouble() as double:
        double.supervision.set_person(ring_after=0.02, answer_after=0.1, ring_timeout=30)
        double.register_call(session_id=CALL, answered_at="2026-11-29T10:00:00Z")
        yield double


@pytest.fixture
def table(calls_table: Any) -> Any:
    store.create_call(
        calls_table, call_id=CALL, caller="+254722000111", to="+254700000100", retention_days=1
    )
    store.record_handoff(
        calls_table,
        CALL,
        {"kind": "transfer", "target": PERSON, "path": "supervise"},
        state="requested",
    )
    return calls_table


class Hooks:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    async def connected(self, ms: int) -> None:
        self.seen.append(("connected", ms))

    async def left(self) -> None:
        self.seen.append(("left", None))

    async def nobody(self, reason: str) -> None:
        self.seen.append(("nobody", reason))


def transfer(
    api: SautikitApiDouble, table: Any, policy: h.SupervisionPolicy = FAST
) -> SupervisedTransfer:
    handoff = store.get_call(table, CALL)["handoff"]
    return SupervisedTransfer(
        client=SautikitClient(api.url, DEFAULT_API_KEY, timeout=2),
        table=table,
        call_id=CALL,
        handoff_id=handoff["handoff_id"],
        target=PERSON,
        label="Front desk",
        policy=policy,
    )


async def test_connects_then_the_person_leaves(api: SautikitApiDouble, table: Any) -> None:
    hooks = Hooks()
    run = transfer(api, table)

    async def connected(ms: int) -> None:
        await hooks.connected(ms)
        api.supervision.person_acts(CALL, "hangup")  # the person leaves while the caller stays

    final = await run.run(connected, hooks.left, hooks.nobody)
    assert final == "ended"
    assert [name for name, _ in hooks.seen] == ["connected", "left"]
    record = store.get_call(table, CALL)["handoff"]
    assert [c["state"] for c in record["changes"]][-2:] == ["connected", "ended"]
    assert record["time_to_person_ms"] == hooks.seen[0][1] and record["supervision_id"]
    (post,) = [r for r in api.requests if r.method == "POST" and r.path.endswith("/supervision")]
    assert post.headers["idempotency-key"] == h.idempotency_key(CALL, record["handoff_id"])


@pytest.mark.parametrize(("behaviour", "reason"), [("busy", "busy"), ("fail", "network_error")])
async def test_nobody_available(
    api: SautikitApiDouble, table: Any, behaviour: str, reason: str
) -> None:
    api.supervision.set_person(behaviour=behaviour)
    hooks = Hooks()
    final = await transfer(api, table).run(hooks.connected, hooks.left, hooks.nobody)
    assert hooks.seen == [("nobody", reason)]
    assert final == ("busy" if behaviour == "busy" else "failed")


async def test_ring_timeout_cancels_the_ringing_leg(api: SautikitApiDouble, table: Any) -> None:
    api.supervision.set_person(behaviour="manual")
    hooks = Hooks()
    policy = h.SupervisionPolicy(ring_timeout=0.5, first_poll=0.05, max_poll=0.1)
    final = await transfer(api, table, policy).run(hooks.connected, hooks.left, hooks.nobody)
    assert (final, hooks.seen) == ("no_answer", [("nobody", "ring_timeout")])
    assert any(r.method == "DELETE" for r in api.requests)
    assert api.supervision.get(CALL)["state"] == "ended"


async def test_second_supervision_is_409_and_missing_scope_is_403(
    api: SautikitApiDouble, table: Any
) -> None:
    api.supervision.set_person(behaviour="manual")
    SautikitClient(api.url, DEFAULT_API_KEY).start_supervision(
        CALL, {"type": "phone", "number": "+254733000000"}, idempotency_key="someone-else"
    )
    hooks = Hooks()
    await transfer(api, table).run(hooks.connected, hooks.left, hooks.nobody)
    assert hooks.seen == [("nobody", "supervision_in_progress")]
    api.scopes = {"calls.read"}
    store.record_handoff(
        table, CALL, {"kind": "transfer", "target": PERSON, "path": "supervise"}, state="requested"
    )
    hooks = Hooks()
    await transfer(api, table).run(hooks.connected, hooks.left, hooks.nobody)
    assert hooks.seen == [("nobody", "scope_denied")]


async def test_caller_hanging_up_while_it_rings_cancels_quietly(
    api: SautikitApiDouble, table: Any
) -> None:
    api.supervision.set_person(behaviour="manual")
    hooks = Hooks()
    run = transfer(api, table)
    task = asyncio.create_task(run.run(hooks.connected, hooks.left, hooks.nobody))
    for _ in range(500):  # until the record says it rings (10 s at most)
        if store.get_call(table, CALL)["handoff"]["state"] == "ringing":
            break
        await asyncio.sleep(0.02)
    run.caller_left()
    assert await asyncio.wait_for(task, 5) == "failed"
    assert hooks.seen == []
    assert store.get_call(table, CALL)["handoff"]["changes"][-1]["reason"] == "caller_hangup"
    assert any(r.method == "DELETE" for r in api.requests)
