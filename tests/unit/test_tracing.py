"""The handlers' tracer: no X-Ray SDK unless TRACE_DETAIL asks; with it, real subsegments.

Handlers are imported in fresh interpreters with the environment Lambda gives them (a task root,
a sampled trace header, an X-Ray daemon address) and tracing left on, as ``Tracing: Active`` has
it; the daemon is a UDP socket on loopback that collects what the SDK sends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless import tracing

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
HANDLERS = sorted(
    f"{path.parent.name}.app"
    for path in FUNCTIONS.glob("*/app.py")
    if path.parent.name != "mapokezi"
)
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """A stand-in X-Ray daemon: a UDP socket on loopback that keeps what it is sent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _lambda_env(daemon: socket.socket, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "TRACE_"))}
    host, port = daemon.getsockname()
    env.update(
        {
            "PYTHONPATH": str(FUNCTIONS),
            "LAMBDA_TASK_ROOT": str(FUNCTIONS),
            "AWS_LAMBDA_FUNCTION_NAME": "tracing-test",
            "_X_AMZN_TRACE_ID": TRACE_HEADER,
            "AWS_XRAY_DAEMON_ADDRESS": f"{host}:{port}",
            "AWS_DEFAULT_REGION": "af-south-1",
            "POWERTOOLS_SERVICE_NAME": "tracing-test",
            "POWERTOOLS_METRICS_NAMESPACE": "MapokeziTest",
        }
    )
    env.update(extra)
    return env


def _run(code: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _received(daemon: socket.socket) -> list[str]:
    # The child has exited, so whatever it sent over loopback is already queued here.
    datagrams = []
    while True:
        try:
            datagrams.append(daemon.recv(65536).decode())
        except BlockingIOError:
            return datagrams


_IMPORT_HANDLER = (
    "import json, sys\n"
    "import {module} as handler\n"
    "print(json.dumps({{'sdk': 'aws_xray_sdk.core' in sys.modules,"
    " 'provider': type(handler.tracer.provider).__name__}}))\n"
)


@pytest.mark.parametrize("module", HANDLERS)
def test_handlers_import_no_xray_sdk_by_default(module: str, daemon: socket.socket) -> None:
    loaded = _run(_IMPORT_HANDLER.format(module=module), _lambda_env(daemon))
    assert loaded == {"sdk": False, "provider": "LambdaSegmentsOnly"}


def test_trace_detail_gives_a_handler_the_sdk_recorder(daemon: socket.socket) -> None:
    env = _lambda_env(daemon, TRACE_DETAIL="true")
    loaded = _run(_IMPORT_HANDLER.format(module="voice.app"), env)
    assert loaded == {"sdk": True, "provider": "AsyncAWSXRayRecorder"}


_TRACED_CALL = """
import json
from serverless import tracing

tracer = tracing.make_tracer()

@tracer.capture_method
def lookup(key):
    return {"key": key}

@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return lookup(event["key"])

print(json.dumps(lambda_handler({"key": "k1"}, None)))
"""


def test_with_trace_detail_the_sdk_sends_subsegments_to_the_daemon(
    daemon: socket.socket,
) -> None:
    result = _run(_TRACED_CALL, _lambda_env(daemon, TRACE_DETAIL="true"))
    assert result == {"key": "k1"}
    # Each datagram is the daemon protocol's header line, then one segment document.
    documents = [json.loads(datagram.split("\n", 1)[1]) for datagram in _received(daemon)]
    assert {doc["name"] for doc in documents} >= {"## lambda_handler", "## __main__.lookup"}
    assert {doc["trace_id"] for doc in documents} == {"1-5759e988-bd862e3fe1be46a994272793"}


def test_without_trace_detail_nothing_is_sent_and_results_pass_through(
    daemon: socket.socket,
) -> None:
    result = _run(_TRACED_CALL, _lambda_env(daemon))
    assert result == {"key": "k1"}
    assert _received(daemon) == []


def test_errors_pass_through_the_unrecorded_tracer() -> None:
    tracer = tracing.make_tracer({})

    @tracer.capture_method
    def fails() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        fails()
    assert isinstance(tracer.provider, tracing.LambdaSegmentsOnly)


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [("", False), ("false", False), ("0", False), ("true", True), (" TRUE ", True), ("1", True)],
)
def test_trace_detail_values(raw: str, wanted: bool) -> None:
    assert tracing.detail_requested({tracing.TRACE_DETAIL: raw}) is wanted


def test_trace_detail_unset_is_off_and_a_typo_is_an_error() -> None:
    assert tracing.detail_requested({}) is False
    with pytest.raises(ValueError, match="TRACE_DETAIL must be true or false"):
        tracing.detail_requested({tracing.TRACE_DETAIL: "ture"})


_BOTH_TRACERS = """
import json
from botocore.client import BaseClient
from serverless import tracing

def patched():
    # The SDK instruments AWS calls by wrapping this method with wrapt.
    return type(BaseClient.__dict__["_make_api_call"]).__name__ == "FunctionWrapper"

tracing.make_tracer({})
before = patched()
tracing.make_tracer({"TRACE_DETAIL": "true"})
print(json.dumps([before, patched()]))
"""


def test_a_detailed_tracer_patches_aws_calls_even_after_a_plain_one(
    daemon: socket.socket,
) -> None:
    # Powertools keeps tracer settings on the class; the plain tracer's must not stick.
    assert _run(_BOTH_TRACERS, _lambda_env(daemon)) == [False, True]
