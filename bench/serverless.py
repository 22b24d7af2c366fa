"""Serverless half: cold-start import time of each Lambda handler and warm invocation times.

- Import time: each handler module (``<function>.app`` for every function folder) is imported in a
  fresh interpreter, several times; the figure is the time of the ``import`` statement alone
  (interpreter start-up excluded), median and spread over the repeats.
- Warm invocations: the voice webhook (first POST of a new call: profile lookup, heartbeat check,
  call creation, token minting, ``<Stream>`` XML) and the stream-status callback run in-process
  against a moto server on loopback, as real HTTP calls. Time spent inside DynamoDB API calls
  (request signing, HTTP round trip to moto, parsing) is measured by wrapping botocore's
  ``BaseClient._make_api_call`` and reported separately from the handler's own time.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.stats import summarize

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
NUMBER = "+254700000100"
CALLER = "+254711000222"
TOKEN_SECRET = "bench-stream-token-secret"

_IMPORT_PROBE = (
    "import sys, time\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "sys.stdout.write(repr(time.perf_counter() - t))\n"
)


def quiet_moto() -> None:
    """Silences the per-request access log of moto's embedded HTTP server."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def handler_modules() -> list[str]:
    """``<function>.app`` for every function folder that has an ``app.py``."""
    return sorted(
        f"{path.parent.name}.app"
        for path in FUNCTIONS.glob("*/app.py")
        if path.parent.name != "mapokezi"
    )


def lambda_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment like the functions get in AWS, with dummy credentials."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "af-south-1",
        "CALLS_TABLE": "mapokezi-calls",
        "POWERTOOLS_SERVICE_NAME": "mapokezi",
        "POWERTOOLS_METRICS_NAMESPACE": "Mapokezi",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(FUNCTIONS)]),
    }
    env.update(extra or {})
    return env


def import_times(repeats: int = 5, python: str | None = None) -> dict[str, Any]:
    """Import time (ms) of each handler module in a fresh interpreter, over `repeats` runs.

    Args:
        python: The interpreter to import with (default: this one).
    """
    results: dict[str, Any] = {}
    env = lambda_env()
    for module in handler_modules():
        samples: list[float] = []
        error = None
        for _ in range(repeats):
            probe = subprocess.run(
                [python or sys.executable, "-c", _IMPORT_PROBE.format(module=module)],
                capture_output=True,
                text=True,
                env=env,
                cwd=FUNCTIONS,
                timeout=60,
            )
            if probe.returncode != 0:
                error = probe.stderr.strip().splitlines()[-1] if probe.stderr else "failed"
                break
            samples.append(float(probe.stdout) * 1000)
        if error:
            results[module] = {"error": error}
        else:
            results[module] = summarize(samples, digits=1)
    return results


class ApiCallTimer:
    """Accumulates wall time spent inside botocore API calls, per operation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls: dict[str, int] = {}

    def reset(self) -> None:
        """Forget what was measured so far."""
        self.seconds = 0.0
        self.calls = {}

    @contextmanager
    def installed(self) -> Iterator[ApiCallTimer]:
        """Wraps ``BaseClient._make_api_call`` while the context is open."""
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        timer = self

        def timed(client: Any, operation: str, params: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                timer.seconds += time.perf_counter() - started
                timer.calls[operation] = timer.calls.get(operation, 0) + 1

        BaseClient._make_api_call = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]


def _http_event(path: str, fields: dict[str, str]) -> dict[str, Any]:
    from local.gateway import Route, build_http_event

    route = Route("POST", path, "bench", "bench", iam=False)
    return build_http_event(
        route,
        method="POST",
        raw_path=path,
        raw_query="",
        headers={"content-type": "application/x-www-form-urlencoded", "host": "bench.local"},
        body=urlencode(fields).encode(),
        path_parameters={},
        host="bench.local",
        source_ip="127.0.0.1",
    )


def _measure(
    invoke: Callable[[int], dict[str, Any]], timer: ApiCallTimer, count: int, warmup: int
) -> dict[str, Any]:
    totals: list[float] = []
    dynamo: list[float] = []
    own: list[float] = []
    statuses: dict[str, int] = {}
    operations: dict[str, int] = {}
    for index in range(warmup + count):
        timer.reset()
        started = time.perf_counter()
        response = invoke(index)
        elapsed = time.perf_counter() - started
        status = str(response.get("statusCode"))
        if index < warmup:
            continue
        statuses[status] = statuses.get(status, 0) + 1
        totals.append(elapsed * 1000)
        dynamo.append(timer.seconds * 1000)
        own.append((elapsed - timer.seconds) * 1000)
        for name, calls in timer.calls.items():
            operations[name] = operations.get(name, 0) + calls
    return {
        "total_ms": summarize(totals),
        "dynamodb_ms": summarize(dynamo),
        "handler_own_ms": summarize(own),
        "status_codes": statuses,
        "aws_calls_per_invocation": {k: round(v / max(1, count), 2) for k, v in operations.items()},
    }


def warm_invocations(count: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Warm per-invocation time of the voice webhook and the stream-status callback."""
    import boto3
    from moto.server import ThreadedMotoServer

    from local.gateway import FakeLambdaContext
    from local.stack import free_port
    from local.template import create_queues, create_tables, resources_of_type
    from mapokezi import config, store
    from mapokezi.profiles import load_profile_file, parse_profile

    quiet_moto()
    port = free_port("127.0.0.1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = dict(os.environ)
    try:
        os.environ.update(
            lambda_env(
                {
                    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                    "MEDIA_STREAM_URL": "wss://media.bench.local/audio",
                    "PUBLIC_BASE_URL": "https://api.bench.local",
                    "STREAM_TOKEN_SECRET": TOKEN_SECRET,
                    "CDR_DELAY_SECONDS": "30",
                }
            )
        )
        for name in ("SAUTIKIT_WEBHOOK_SECRET", "SAUTIKIT_WEBHOOK_SECRET_ARN"):
            os.environ.pop(name, None)
        config.reset_aws_clients()
        create_tables(boto3.client("dynamodb"), {"CallsTable": "mapokezi-calls"})
        queues = create_queues(
            boto3.client("sqs"),
            {name: f"bench-{name}" for name in resources_of_type("AWS::SQS::Queue")},
        )
        if queues:
            os.environ["CDR_QUEUE_URL"] = next(iter(queues.values()))
        table = config.dynamodb_table("mapokezi-calls")
        profile_file = ROOT / "profiles" / "example.yaml"
        store.put_profile(table, parse_profile(load_profile_file(profile_file), number=NUMBER))
        store.put_heartbeat(table, "bench-node", active_calls=0, capacity=100, draining=False)
        results: dict[str, Any] = {}
        timer = ApiCallTimer()
        with timer.installed():
            call_ids: list[str] = []
            try:
                voice = importlib.import_module("voice.app").lambda_handler
            except Exception as exc:  # a handler that does not import is reported, not fatal
                results["voice.app"] = {"error": f"{type(exc).__name__}: {exc}"}
            else:

                def first_post(_: int) -> dict[str, Any]:
                    call_id = str(uuid.uuid4())
                    call_ids.append(call_id)
                    fields = {"CallSid": call_id, "From": CALLER, "To": NUMBER}
                    return voice(_http_event("/voice", fields), FakeLambdaContext("voice"))

                results["voice.app (first POST → <Stream>)"] = _measure(
                    first_post, timer, count, warmup
                )
            try:
                status = importlib.import_module("stream_status.app").lambda_handler
            except Exception as exc:
                results["stream_status.app"] = {"error": f"{type(exc).__name__}: {exc}"}
            else:
                ids = call_ids or [str(uuid.uuid4()) for _ in range(count + warmup)]

                def started(index: int) -> dict[str, Any]:
                    fields = {
                        "CallSid": ids[index % len(ids)],
                        "StreamEvent": "stream-started",
                        "StreamSid": f"MZ{index:030d}",
                    }
                    return status(
                        _http_event("/stream-status", fields), FakeLambdaContext("stream_status")
                    )

                results["stream_status.app (stream-started)"] = _measure(
                    started, timer, count, warmup
                )
        return results
    finally:
        os.environ.clear()
        os.environ.update(saved)
        config.reset_aws_clients()
        server.stop()


def run(quick: bool = False, python: str | None = None) -> dict[str, Any]:
    """Import times and warm invocation times; `quick` takes fewer samples.

    Args:
        python: Interpreter for the import times (default: this one), e.g. a Python 3.12 venv
            with only boto3 and Powertools installed, like the Lambda runtime.
    """
    started = time.monotonic()
    results = {
        "import_python": python or sys.executable,
        "import_ms": import_times(repeats=3 if quick else 7, python=python),
        "warm": warm_invocations(count=50 if quick else 200, warmup=10 if quick else 20),
    }
    results["runtime_s"] = round(time.monotonic() - started, 1)
    return results


def print_table(results: dict[str, Any]) -> None:
    """Prints `run()` results."""
    from bench.report import format_table

    print(
        "Lambda handler import (cold start), ms, fresh interpreter per sample: "
        f"{results.get('import_python', '')}"
    )
    rows = []
    for module, row in results["import_ms"].items():
        rows.append({"module": module, **row} if "error" not in row else {"module": module})
        if "error" in row:
            rows[-1]["error"] = row["error"][:60]
    print(
        format_table(
            [("module", "module"), ("n", "n"), ("p50", "p50"), ("max", "max"), ("error", "error")],
            rows,
        )
    )
    print("Warm invocation, ms (in-process; DynamoDB on moto server over loopback)")
    rows = []
    for name, row in results["warm"].items():
        if "error" in row:
            rows.append({"handler": name, "total_p50": row["error"][:60]})
            continue
        rows.append(
            {
                "handler": name,
                "total_p50": row["total_ms"]["p50"],
                "total_p99": row["total_ms"]["p99"],
                "own_p50": row["handler_own_ms"]["p50"],
                "own_p99": row["handler_own_ms"]["p99"],
                "ddb_p50": row["dynamodb_ms"]["p50"],
                "ddb_p99": row["dynamodb_ms"]["p99"],
                "calls": sum(row["aws_calls_per_invocation"].values()),
            }
        )
    print(
        format_table(
            [
                ("handler", "handler"),
                ("total_p50", "total p50"),
                ("total_p99", "total p99"),
                ("own_p50", "own p50"),
                ("own_p99", "own p99"),
                ("ddb_p50", "DynamoDB p50"),
                ("ddb_p99", "DynamoDB p99"),
                ("calls", "AWS calls"),
            ],
            rows,
        )
    )


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
