"""Serverless half: Lambda cold starts against the 200 ms import goal, and warm invocations.

- Cold starts: each handler module (``<function>.app`` for every function folder) is imported in a
  fresh interpreter from a copy of ``functions/`` compiled as ``make deploy`` ships it (checked-hash
  ``.pyc``), with the environment Lambda gives it (task root, a sampled trace header, an X-Ray
  daemon address, tracing left on as ``Tracing: Active`` has it). Where a first request is
  scripted the handler then serves it against a moto server on loopback: the voice webhook's first
  POST, the stream-started callback and the platform event of that call, and the call's record
  from the calls API. Import and first request are timed apart, in CPU and wall time, so work
  moved from one to the other shows. The stream token secret comes from Secrets Manager, as in
  AWS. ``voice.app`` is measured twice more: with ``TRACE_DETAIL=true`` (the X-Ray SDK loaded) and
  from the bare sources (what a deployment without ``.pyc`` files costs).
- Warm invocations: the voice webhook (first POST of a new call: profile lookup, heartbeat check,
  call creation, token minting, ``<Stream>`` XML) and the stream-status callback run in-process
  against a moto server on loopback, as real HTTP calls. Time spent inside DynamoDB API calls
  (request signing, HTTP round trip to moto, parsing) is measured by wrapping botocore's
  ``BaseClient._make_api_call`` and reported separately from the handler's own time.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
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
#: Counts a probe's instructions (user space, whole process) without simulating caches.
_CACHEGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
#: The issue's goal for a handler's import in a Python 3.12 environment like Lambda's.
IMPORT_GOAL_MS = 200.0
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

# Runs in the Lambda-like interpreter, which holds only boto3 and Powertools: no bench code.
_COLD_PROBE = """
import json, sys, time
spec = json.load(sys.stdin)
cpu, wall = time.process_time(), time.perf_counter()
handler = __import__(spec["module"], fromlist=["lambda_handler"]).lambda_handler
result = {
    "import_cpu_ms": (time.process_time() - cpu) * 1000,
    "import_wall_ms": (time.perf_counter() - wall) * 1000,
}

class Context:
    function_name = spec["function"]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:af-south-1:123456789012:function:" + spec["function"]
    aws_request_id = "cold-start-probe"
    log_group_name = "/aws/lambda/" + spec["function"]
    log_stream_name = "cold"

    def get_remaining_time_in_millis(self):
        return 10000

if spec["event"] is not None:
    cpu, wall = time.process_time(), time.perf_counter()
    response = handler(spec["event"], Context())
    result["first_cpu_ms"] = (time.process_time() - cpu) * 1000
    result["first_wall_ms"] = (time.perf_counter() - wall) * 1000
    result["status"] = response.get("statusCode") if isinstance(response, dict) else None
result["xray_sdk_loaded"] = "aws_xray_sdk.core" in sys.modules
with open(spec["out"], "w") as out:
    json.dump(result, out)
"""


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


@contextmanager
def moto_stack() -> Iterator[dict[str, str]]:
    """A moto server on loopback with the calls table, the queues, a stream token secret in
    Secrets Manager, the example profile on :data:`NUMBER` and a healthy media node.

    Yields:
        The variables that point the functions at it (endpoint, queue URLs, secret ARN).
    """
    import boto3
    from moto.server import ThreadedMotoServer

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
        endpoint = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        os.environ.update(lambda_env(endpoint))
        for name in (
            "SAUTIKIT_WEBHOOK_SECRET",
            "SAUTIKIT_WEBHOOK_SECRET_ARN",
            "STREAM_TOKEN_SECRET",
        ):
            os.environ.pop(name, None)
        config.reset_aws_clients()
        create_tables(boto3.client("dynamodb"), {"CallsTable": "mapokezi-calls"})
        queues = create_queues(
            boto3.client("sqs"),
            {name: f"bench-{name}" for name in resources_of_type("AWS::SQS::Queue")},
        )
        secret = boto3.client("secretsmanager").create_secret(
            Name=f"bench-stream-token-{uuid.uuid4().hex[:8]}", SecretString=TOKEN_SECRET
        )
        table = config.dynamodb_table("mapokezi-calls")
        profile_file = ROOT / "profiles" / "example.yaml"
        store.put_profile(table, parse_profile(load_profile_file(profile_file), number=NUMBER))
        store.put_heartbeat(table, "bench-node", active_calls=0, capacity=100, draining=False)
        yield {
            **endpoint,
            "CDR_QUEUE_URL": queues.get("CdrQueue", ""),
            "RESCUE_QUEUE_URL": queues.get("RescueQueue", ""),
            "STREAM_TOKEN_SECRET_ARN": secret["ARN"],
            "MEDIA_STREAM_URL": "wss://media.bench.local/audio",
            "PUBLIC_BASE_URL": "https://api.bench.local",
            "CDR_DELAY_SECONDS": "30",
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)
        config.reset_aws_clients()
        server.stop()


def _form_event(path: str, fields: dict[str, str]) -> dict[str, Any]:
    return _http_event(
        "POST", path, urlencode(fields).encode(), "application/x-www-form-urlencoded"
    )


def _cold_requests(call_id: str) -> dict[str, dict[str, Any] | None]:
    """The scripted first request of each handler for one cold sample (None: import only)."""
    event_body = {"kind": "call.answered", "event_id": str(uuid.uuid4()), "data": {}}
    event_body["data"] = {"call_id": call_id, "occurred_at": "2026-11-30T00:00:00Z"}
    return {
        "voice.app": _form_event("/voice", {"CallSid": call_id, "From": CALLER, "To": NUMBER}),
        "stream_status.app": _form_event(
            "/stream-status",
            {"CallSid": call_id, "StreamEvent": "stream-started", "StreamSid": f"MZ{call_id[:30]}"},
        ),
        "events.app": _http_event(
            "POST", "/events", json.dumps(event_body).encode(), "application/json"
        ),
        "calls_api.app": _http_event(
            "GET", f"/calls/{call_id}", b"", None, path_parameters={"call_id": call_id}
        ),
    }


def _cold_sample(
    python: str,
    folder: Path,
    module: str,
    event: dict[str, Any] | None,
    env: dict[str, str],
    count_instructions: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        spec = {"module": module, "function": module.split(".")[0], "event": event}
        spec["out"] = str(out)
        command = [python, "-c", _COLD_PROBE]
        if count_instructions:
            command = [*_CACHEGRIND, *command]
        probe = subprocess.run(
            command,
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            env={**env, "PYTHONPATH": str(folder), "LAMBDA_TASK_ROOT": str(folder)},
            cwd=folder,
            timeout=120,
        )
        if probe.returncode != 0 or not out.exists():
            lines = probe.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit {probe.returncode}"}
        result: dict[str, Any] = json.loads(out.read_text())
        if count_instructions:
            refs = re.search(r"I\s+refs:\s+([\d,]+)", probe.stderr)
            result["instructions"] = int(refs.group(1).replace(",", "")) if refs else None
        return result


def cold_starts(
    stack: dict[str, str],
    repeats: int = 5,
    python: str | None = None,
    instructions: bool = False,
) -> dict[str, Any]:
    """Import and first-request times (ms) of each handler in fresh Lambda-like interpreters.

    Args:
        stack: What :func:`moto_stack` yielded.
        python: The interpreter to run the handlers in (default: this one).
        instructions: Also count the instructions of the import and of import plus first
            request, once each under valgrind (they do not move with other load on the machine).
    """
    count = instructions and shutil.which("valgrind") is not None
    interpreter = python or sys.executable
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # X-Ray daemon stand-in
    daemon.bind(("127.0.0.1", 0))
    results: dict[str, Any] = {}
    try:
        env = {
            k: v
            for k, v in lambda_env(stack).items()
            if k not in ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_DISABLED")
        }
        env.update(
            {
                "POWERTOOLS_LOG_LEVEL": "INFO",  # as the template sets it
                "PYTHONDONTWRITEBYTECODE": "1",  # the task root is read-only in Lambda
                "_X_AMZN_TRACE_ID": TRACE_HEADER,
                "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            }
        )
        env.pop("TRACE_DETAIL", None)
        call_ids = [str(uuid.uuid4()) for _ in range(repeats)]
        # The voice webhook first: its first POSTs create the calls the others then touch.
        modules = sorted(handler_modules(), key=lambda module: module != "voice.app")
        with deployed_functions(interpreter) as deployed, deployed_functions(None) as sources:
            variants = [(module, module, deployed, {}) for module in modules]
            variants += [
                ("voice.app", "voice.app, TRACE_DETAIL=true", deployed, {"TRACE_DETAIL": "true"}),
                ("voice.app", "voice.app, no .pyc (compiled at import)", sources, {}),
            ]
            for module, label, folder, extra in variants:
                samples = []
                for call_id in call_ids:
                    if label != module:  # a call of its own: the first POST is a first POST again
                        call_id = str(uuid.uuid4())
                    event = _cold_requests(call_id).get(module)
                    env_of_sample = {**env, **extra}
                    samples.append(_cold_sample(interpreter, folder, module, event, env_of_sample))
                results[label] = _cold_summary(samples)
                if count:
                    results[label]["instructions_m"] = _instructions(
                        interpreter, folder, module, {**env, **extra}
                    )
    finally:
        daemon.close()
    return results


def _instructions(
    python: str, folder: Path, module: str, env: dict[str, str]
) -> dict[str, float | None]:
    """Millions of instructions of the import alone and of the import plus first request."""
    # Handlers other than the voice webhook need the call its first POST makes.
    call_id = str(uuid.uuid4())
    if module != "voice.app":
        voice_post = _cold_requests(call_id)["voice.app"]
        _cold_sample(python, folder, "voice.app", voice_post, env)
    event = _cold_requests(call_id).get(module)
    figures: dict[str, float | None] = {}
    for name, scripted in (("import", None), ("import_first", event)):
        if name == "import_first" and scripted is None:
            continue
        sample = _cold_sample(python, folder, module, scripted, env, count_instructions=True)
        total = sample.get("instructions")
        figures[name] = None if total is None else round(total / 1e6)
    return figures


@contextmanager
def deployed_functions(python: str | None) -> Iterator[Path]:
    """A copy of ``functions/`` as ``make deploy`` ships it: with checked-hash ``.pyc`` files
    compiled by `python`, so a cold start does not compile the sources (the task root is
    read-only, so Lambda cannot cache them itself). With `python` None: the bare sources."""
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "functions"
        shutil.copytree(FUNCTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
        if python is not None:
            compile_all = [python, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash"]
            subprocess.run([*compile_all, str(target)], check=True, capture_output=True)
        yield target


def _cold_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [s["error"] for s in samples if "error" in s]
    if errors:
        return {"error": errors[0]}
    summary: dict[str, Any] = {}
    for figure in ("import_cpu_ms", "import_wall_ms", "first_cpu_ms", "first_wall_ms"):
        values = [s[figure] for s in samples if figure in s]
        if values:
            summary[figure] = summarize(values, digits=1)
    if "first_cpu_ms" in summary:
        total = [s["import_cpu_ms"] + s["first_cpu_ms"] for s in samples]
        summary["cold_request_cpu_ms"] = summarize(total, digits=1)
        summary["first_status"] = sorted({str(s.get("status")) for s in samples})
    summary["xray_sdk_loaded"] = any(s.get("xray_sdk_loaded") for s in samples)
    summary["import_within_goal"] = summary["import_cpu_ms"]["p50"] <= IMPORT_GOAL_MS
    return summary


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


def _http_event(
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    from local.gateway import Route, build_http_event

    headers = {"host": "bench.local"}
    if content_type:
        headers["content-type"] = content_type
    return build_http_event(
        Route(method, path, "bench", "bench", iam=False),
        method=method,
        raw_path=path,
        raw_query="",
        headers=headers,
        body=body,
        path_parameters=path_parameters or {},
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


def warm_invocations(stack: dict[str, str], count: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Warm per-invocation time of the voice webhook and the stream-status callback.

    Args:
        stack: What :func:`moto_stack` yielded (this process's environment is pointed at it).
    """
    from local.gateway import FakeLambdaContext
    from mapokezi import config

    os.environ.update(stack)
    config.reset_aws_clients()
    results: dict[str, Any] = {}
    timer = ApiCallTimer()
    # The handlers' metrics (EMF lines on stdout, as CloudWatch reads them) are not the report.
    quiet = contextlib.redirect_stdout(io.StringIO())
    with timer.installed(), quiet, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Powertools: no application metrics on some requests
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
                return voice(_form_event("/voice", fields), FakeLambdaContext("voice"))

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
                    _form_event("/stream-status", fields), FakeLambdaContext("stream_status")
                )

            results["stream_status.app (stream-started)"] = _measure(started, timer, count, warmup)
    return results


def run(
    quick: bool = False, python: str | None = None, instructions: bool = False
) -> dict[str, Any]:
    """Cold starts and warm invocation times; `quick` takes fewer samples.

    Args:
        python: Interpreter for the cold starts (default: this one), e.g. a Python 3.12 venv
            with only boto3 and Powertools installed, like the Lambda runtime.
        instructions: Also count cold-start instructions with valgrind (a few minutes).
    """
    started = time.monotonic()
    with moto_stack() as stack:
        results = {
            "cold_python": python or sys.executable,
            "import_goal_ms": IMPORT_GOAL_MS,
            "cold_ms": cold_starts(
                stack, repeats=3 if quick else 7, python=python, instructions=instructions
            ),
            "warm": warm_invocations(stack, count=50 if quick else 200, warmup=10 if quick else 20),
        }
    results["runtime_s"] = round(time.monotonic() - started, 1)
    return results


def _p50(row: dict[str, Any], figure: str) -> float | None:
    return (row.get(figure) or {}).get("p50")


def print_table(results: dict[str, Any]) -> None:
    """Prints `run()` results."""
    from bench.report import format_table

    goal = results.get("import_goal_ms", IMPORT_GOAL_MS)
    print(
        f"Lambda cold start, ms p50 (CPU; wall), fresh interpreter per sample, goal: import "
        f"<= {goal:g} ms CPU: {results.get('cold_python', '')}"
    )
    rows = []
    for module, row in results.get("cold_ms", {}).items():
        if "error" in row:
            rows.append({"module": module, "goal": row["error"][:60]})
            continue
        rows.append(
            {
                "module": module,
                "n": row["import_cpu_ms"]["n"],
                "import": _p50(row, "import_cpu_ms"),
                "import_wall": _p50(row, "import_wall_ms"),
                "first": _p50(row, "first_cpu_ms"),
                "first_wall": _p50(row, "first_wall_ms"),
                "cold": _p50(row, "cold_request_cpu_ms"),
                "mi_import": (row.get("instructions_m") or {}).get("import"),
                "mi_first": (row.get("instructions_m") or {}).get("import_first"),
                "sdk": "yes" if row["xray_sdk_loaded"] else "no",
                "goal": "met" if row["import_within_goal"] else "over",
            }
        )
    print(
        format_table(
            [
                ("module", "module"),
                ("n", "n"),
                ("import", "import CPU"),
                ("import_wall", "import wall"),
                ("first", "1st request CPU"),
                ("first_wall", "1st request wall"),
                ("cold", "import+1st CPU"),
                ("mi_import", "import Minstr"),
                ("mi_first", "import+1st Minstr"),
                ("sdk", "X-Ray SDK"),
                ("goal", "import goal"),
            ],
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
