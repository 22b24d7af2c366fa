"""The whole product on one machine, from real parts: ``make run`` and the end-to-end tests.

What runs (all on loopback unless ``LOCAL_HOST`` says otherwise):

- DynamoDB and SQS: moto in server mode; the table and queues are created from template.yaml.
- The HTTP API: :class:`local.gateway.Gateway` serving template.yaml's routes with the real
  Lambda handlers, and a :class:`local.sqs_poller.SqsPoller` feeding each SQS consumer (the CDR
  fetcher, the rescues).
- The messages topic: SNS in moto, with a queue subscribed whose notifications are printed.
- The media node: ``python -m media_node`` as a child process, exactly as in the container.
- Sautikit's REST API: the double from ``doubles/sautikit_api`` unless ``SAUTIKIT_API_URL`` is set.
- The models: OpenAI Realtime when ``OPENAI_API_KEY`` is set and Gemini Live when
  ``GEMINI_API_KEY`` is set; the offline model stands in for each one whose key is missing.
- The example profile, seeded for ``DEMO_NUMBER`` and, answered by Gemini Live, for
  ``DEMO_GEMINI_NUMBER``, plus any ``StackConfig.profiles``.
- The operator's console (``mapokezi console``) on ``CONSOLE_PORT``; the gateway's ``GET /``
  redirects to it.

Tests drive it through :class:`StackConfig`: ``openai_api_key`` + ``openai_realtime_url`` (and
``gemini_api_key`` + ``gemini_live_url``) point the media node at models the test runs (doubles
with their own script), ``profiles``
seeds more numbers, ``heartbeat_max_age_seconds`` and ``media_node_env`` shorten the health
timings, and :meth:`LocalStack.crash_media_node` / :meth:`LocalStack.start_media_node` take the
node away and bring it back. ``stop()`` restores the environment variables ``start()`` set.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local import moto_atomic
from local.gateway import Gateway
from local.sqs_poller import SqsPoller
from local.template import create_queues, create_tables, load_template, resources_of_type
from mapokezi import config, store
from mapokezi.config import DEFAULT_CALLS_TABLE, env_int
from mapokezi.profiles import load_profile_file, parse_profile
from media_node.node_settings import DEFAULT_GEMINI_LIVE_URL

log = logging.getLogger("mapokezi.local")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PROFILE = ROOT / "profiles" / "example.yaml"
LOCAL_SAUTIKIT_KEY = "local-sautikit-api-key"
LOCAL_STREAM_TOKEN_SECRET = "local-stream-token-secret"
CONSOLE_HOST = "127.0.0.1"


def free_port(host: str) -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class StackConfig:
    """Ports, names and secrets of the local stack; every one has an environment variable."""

    host: str = "127.0.0.1"
    gateway_port: int = 3000
    media_node_port: int = 8080
    moto_port: int = 5055
    sautikit_double_port: int = 8091
    model_double_port: int = 8092
    gemini_double_port: int = 8093
    console_port: int = 8099
    demo_number: str = "+254700000100"
    demo_gemini_number: str = "+254700000200"
    table_name: str = "mapokezi-calls"
    stream_token_secret: str = LOCAL_STREAM_TOKEN_SECRET
    webhook_secret: str = ""
    sautikit_api_url: str = ""
    sautikit_api_key: str = LOCAL_SAUTIKIT_KEY
    openai_api_key: str = ""
    openai_realtime_url: str = ""
    gemini_api_key: str = ""
    gemini_live_url: str = ""
    cdr_delay_seconds: int = 2
    keep_opening_hours: bool = False
    #: Failed CDR fetches come back after this many seconds (AWS: 6x the function timeout).
    queue_visibility_seconds: int = 5
    media_node_env: dict[str, str] = field(default_factory=dict)
    #: More receptionist profiles to seed: dialled number -> profile fields (as in a file).
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``HEARTBEAT_MAX_AGE_SECONDS`` for the webhooks (None: the product default).
    heartbeat_max_age_seconds: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        """Defaults overridden by the documented environment variables (or ``environ``)."""
        env = os.environ if environ is None else environ
        return cls(
            host=env.get("LOCAL_HOST", "127.0.0.1"),
            gateway_port=env_int(env, "GATEWAY_PORT", 3000, low=0, high=65535),
            media_node_port=env_int(env, "MEDIA_NODE_PORT", 8080, low=0, high=65535),
            moto_port=env_int(env, "MOTO_PORT", 5055, low=0, high=65535),
            sautikit_double_port=env_int(env, "SAUTIKIT_DOUBLE_PORT", 8091, low=0, high=65535),
            model_double_port=env_int(env, "MODEL_DOUBLE_PORT", 8092, low=0, high=65535),
            gemini_double_port=env_int(env, "GEMINI_DOUBLE_PORT", 8093, low=0, high=65535),
            console_port=env_int(env, "CONSOLE_PORT", 8099, low=0, high=65535),
            demo_number=env.get("DEMO_NUMBER", "+254700000100"),
            demo_gemini_number=env.get("DEMO_GEMINI_NUMBER", "+254700000200"),
            table_name=env.get("CALLS_TABLE", DEFAULT_CALLS_TABLE),
            stream_token_secret=env.get("STREAM_TOKEN_SECRET", LOCAL_STREAM_TOKEN_SECRET),
            webhook_secret=env.get("SAUTIKIT_WEBHOOK_SECRET", ""),
            sautikit_api_url=env.get("SAUTIKIT_API_URL", ""),
            sautikit_api_key=env.get("SAUTIKIT_API_KEY", LOCAL_SAUTIKIT_KEY),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
            openai_realtime_url=env.get("OPENAI_REALTIME_URL", ""),
            gemini_api_key=env.get("GEMINI_API_KEY", ""),
            gemini_live_url=env.get("GEMINI_LIVE_URL", ""),
            cdr_delay_seconds=env_int(env, "CDR_DELAY_SECONDS", 2, low=0, high=900),
            keep_opening_hours=env.get("DEMO_KEEP_HOURS", "") not in ("", "0"),
        )

    @property
    def needs_offline_model(self) -> bool:
        """Whether a provider has no key, so the offline model stands in for it."""
        return not (self.openai_api_key and self.gemini_api_key)

    @classmethod
    def ephemeral(cls, **overrides: Any) -> StackConfig:
        """Free ports everywhere: for tests, so they never collide with a running `make run`."""
        host = overrides.pop("host", "127.0.0.1")
        ports = {
            name: free_port(host)
            for name in (
                "gateway_port",
                "media_node_port",
                "moto_port",
                "sautikit_double_port",
                "model_double_port",
                "gemini_double_port",
                "console_port",
            )
        }
        return cls(host=host, **{**ports, **overrides})


class LocalStack:
    """Start and stop every part; ``parts`` describes what runs where."""

    def __init__(self, cfg: StackConfig | None = None) -> None:
        self.cfg = cfg or StackConfig.from_env()
        self.parts: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.moto: Any = None
        self.gateway: Gateway | None = None
        self.pollers: list[SqsPoller] = []
        self._consumers: list[tuple[str, str, str]] = []
        self.notifications: list[dict[str, Any]] = []
        self.sautikit: Any = None
        self.model: Any = None
        self.media_node: subprocess.Popen[bytes] | None = None
        self.console: Any = None
        self._log_thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start everything, in dependency order; on failure, stop what already started."""
        self._check_ports()
        try:
            self._start_aws()
            self._start_sautikit()
            self._start_model()
            self._seed_profile()
            self._start_media_node()
            self._start_console()
            self._start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything that runs (safe to call more than once)."""
        if self.console:
            self.console.stop()
            self.console = None
        if self.gateway:
            self.gateway.stop()
            self.gateway = None
        for poller in self.pollers:
            poller.stop()
        self.pollers = []
        if self.media_node and self.media_node.poll() is None:
            self.media_node.terminate()  # SIGTERM: the node drains, then exits
            try:
                self.media_node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.media_node.kill()
                self.media_node.wait(timeout=5)
        self.media_node = None
        if self.model:
            self.model.stop()
            self.model = None
        if self.sautikit:
            self.sautikit.stop()
            self.sautikit = None
        if self.moto:
            self.moto.stop()
            self.moto = None
        for name, value in self._saved_env.items():  # leave the process as it was found
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        config.reset_aws_clients()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_ports(self) -> None:
        """Fail fast, in one line, when a port is taken (moto would only print and carry on)."""
        cfg = self.cfg
        wanted = {
            "GATEWAY_PORT": cfg.gateway_port,
            "MEDIA_NODE_PORT": cfg.media_node_port,
            "MOTO_PORT": cfg.moto_port,
            "SAUTIKIT_DOUBLE_PORT": None if cfg.sautikit_api_url else cfg.sautikit_double_port,
            "MODEL_DOUBLE_PORT": cfg.model_double_port if cfg.needs_offline_model else None,
            "GEMINI_DOUBLE_PORT": cfg.gemini_double_port if cfg.needs_offline_model else None,
            "CONSOLE_PORT": cfg.console_port,
        }
        for name, port in wanted.items():
            if port is None:
                continue
            host = CONSOLE_HOST if name == "CONSOLE_PORT" else cfg.host
            with socket.socket() as sock:
                # Like the servers themselves: leftover TIME_WAIT connections are no conflict.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    raise RuntimeError(
                        f"port {port} ({name}) is in use on {host}: is `make run` already "
                        f"running? Stop it, or set {name} to another port."
                    ) from None

    # -- parts -----------------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.gateway_port}"

    @property
    def media_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.cfg.media_node_port}/audio"

    def table(self) -> Any:
        """The calls table (boto3 resource, pointed at moto)."""
        return config.dynamodb_table(self.cfg.table_name)

    def _set_env(self, **values: str) -> None:
        for name in values:
            self._saved_env.setdefault(name, os.environ.get(name))
        self.env.update(values)
        os.environ.update(values)

    def _start_aws(self) -> None:
        from moto.server import ThreadedMotoServer

        moto_atomic.install()
        cfg = self.cfg
        self.moto = ThreadedMotoServer(ip_address=cfg.host, port=cfg.moto_port, verbose=False)
        self.moto.start()
        endpoint = f"http://{cfg.host}:{cfg.moto_port}"
        self._set_env(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION="af-south-1",
            CALLS_TABLE=cfg.table_name,
            POWERTOOLS_SERVICE_NAME="mapokezi-local",
            POWERTOOLS_METRICS_NAMESPACE="Mapokezi",
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_LOG_LEVEL=os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            CDR_DELAY_SECONDS=str(cfg.cdr_delay_seconds),
            # Locally the platform record is final within seconds; retry at that pace.
            CDR_RETRY_BASE_SECONDS=os.environ.get("CDR_RETRY_BASE_SECONDS", "2"),
            STREAM_TOKEN_SECRET=cfg.stream_token_secret,
            MEDIA_STREAM_URL=self.media_url,
            PUBLIC_BASE_URL=self.gateway_url,
        )
        if cfg.webhook_secret:
            self._set_env(SAUTIKIT_WEBHOOK_SECRET=cfg.webhook_secret)
        if cfg.heartbeat_max_age_seconds is not None:
            self._set_env(HEARTBEAT_MAX_AGE_SECONDS=str(cfg.heartbeat_max_age_seconds))
        config.reset_aws_clients()
        create_tables(boto3.client("dynamodb"), {"CallsTable": cfg.table_name})
        queues = resources_of_type("AWS::SQS::Queue")
        names = {logical: f"mapokezi-{logical}" for logical in queues}
        urls = create_queues(
            boto3.client("sqs"),
            names,
            VisibilityTimeout=str(cfg.queue_visibility_seconds),
        )
        self.parts["DynamoDB + SQS + SNS (moto server)"] = endpoint
        globals_env = load_template()["Globals"]["Function"]["Environment"]["Variables"]
        for name, value in globals_env.items():  # e.g. CDR_QUEUE_URL: !Ref CdrQueue
            if isinstance(value, dict) and value.get("Ref") in urls:
                self._set_env(**{name: urls[value["Ref"]]})
        self._consumers = [
            (function, handler, urls[queue]) for function, handler, queue in _sqs_consumers()
        ]
        self._start_messages_topic()

    def _start_messages_topic(self) -> None:
        """The messages topic, and an inbox queue subscribed to it whose notices are printed."""
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="mapokezi-messages")["TopicArn"]
        inbox = sqs.create_queue(QueueName="mapokezi-messages-inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
        self._set_env(MESSAGES_TOPIC_ARN=topic)
        self.pollers.append(SqsPoller(sqs, inbox, self._print_notifications).start())
        self.parts["Messages topic (notices printed here)"] = topic

    def _print_notifications(self, event: dict[str, Any]) -> dict[str, Any]:
        for record in event["Records"]:
            notice = json.loads(record["body"])
            self.notifications.append(notice)
            sys.stderr.write(
                f"[notification] {notice.get('Subject')}\n"
                + "".join(f"[notification]   {line}\n" for line in notice["Message"].splitlines())
            )
        return {"batchItemFailures": []}

    def _start_sautikit(self) -> None:
        cfg = self.cfg
        if cfg.sautikit_api_url:
            self._set_env(
                SAUTIKIT_API_URL=cfg.sautikit_api_url, SAUTIKIT_API_KEY=cfg.sautikit_api_key
            )
            self.parts["Sautikit API (external)"] = cfg.sautikit_api_url
            return
        from doubles.sautikit_api import SautikitApiDouble

        self.sautikit = SautikitApiDouble(
            api_key=cfg.sautikit_api_key,
            host=cfg.host,
            port=cfg.sautikit_double_port,
            # Supervision events go where the number's events_url would send them.
            events_url=f"{self.gateway_url}/events",
            webhook_secret=cfg.webhook_secret or None,
        ).start()
        self._set_env(SAUTIKIT_API_URL=self.sautikit.url, SAUTIKIT_API_KEY=cfg.sautikit_api_key)
        self.parts["Sautikit API double"] = self.sautikit.url

    def _start_model(self) -> None:
        cfg = self.cfg
        if cfg.needs_offline_model:
            from local.offline_model import OfflineModel

            self.model = OfflineModel(
                host=cfg.host, port=cfg.model_double_port, gemini_port=cfg.gemini_double_port
            ).start()
        if cfg.openai_api_key:
            url = cfg.openai_realtime_url or "wss://api.openai.com/v1/realtime"
            self._set_env(OPENAI_API_KEY=cfg.openai_api_key, OPENAI_REALTIME_URL=url)
            self.parts["Model: OpenAI Realtime"] = url
        else:
            self._set_env(OPENAI_REALTIME_URL=self.model.url, OPENAI_API_KEY=self.model.api_key)
            self.parts["Model: offline (no OPENAI_API_KEY)"] = self.model.url
        if cfg.gemini_api_key:
            url = cfg.gemini_live_url or DEFAULT_GEMINI_LIVE_URL
            self._set_env(GEMINI_API_KEY=cfg.gemini_api_key, GEMINI_LIVE_URL=url)
            self.parts["Model: Gemini Live"] = url
        else:
            url = self.model.gemini_url
            self._set_env(GEMINI_LIVE_URL=url, GEMINI_API_KEY=self.model.api_key)
            self.parts["Model: offline Gemini Live (no GEMINI_API_KEY)"] = url

    def _seed_profile(self) -> None:
        data = load_profile_file(EXAMPLE_PROFILE)
        note = ""
        if not self.cfg.keep_opening_hours:
            # A demo should reach the receptionist at any hour; DEMO_KEEP_HOURS=1 keeps them.
            data.pop("hours", None)
            note = " (open 24/7 locally)"
        profile = parse_profile(data, number=self.cfg.demo_number)
        store.put_profile(self.table(), profile)
        self.parts[f"Profile {profile.business_name}{note}"] = self.cfg.demo_number
        # The same receptionist answered by Gemini Live: `make call ARGS="--to <number>"`.
        gemini = parse_profile(
            {**data, "model": {"provider": "gemini"}}, number=self.cfg.demo_gemini_number
        )
        store.put_profile(self.table(), gemini)
        self.parts[f"Profile {gemini.business_name}, Gemini Live{note}"] = (
            self.cfg.demo_gemini_number
        )
        for number, fields in self.cfg.profiles.items():
            extra = parse_profile(fields, number=number)
            store.put_profile(self.table(), extra)
            self.parts[f"Profile {extra.business_name}"] = number

    def crash_media_node(self) -> None:
        """Kill the media node without a drain (SIGKILL): its heartbeats simply stop."""
        if self.media_node and self.media_node.poll() is None:
            self.media_node.kill()
            self.media_node.wait(timeout=10)
        self.media_node = None
        self.parts.pop("Media node (python -m media_node)", None)

    def start_media_node(self) -> None:
        """Start the media node (again, after :meth:`crash_media_node`); returns when healthy."""
        if self.media_node and self.media_node.poll() is None:
            raise RuntimeError("the media node is already running")
        self._start_media_node()

    def _start_media_node(self) -> None:
        cfg = self.cfg
        env = {
            **os.environ,
            "MEDIA_NODE_PORT": str(cfg.media_node_port),
            "MEDIA_NODE_HOST": cfg.host,
            # Locally a stop should be quick; in ECS the node drains for up to 100 s.
            "DRAIN_SECONDS": os.environ.get("DRAIN_SECONDS", "5"),
            "HEARTBEAT_INTERVAL_SECONDS": os.environ.get("HEARTBEAT_INTERVAL_SECONDS", "2"),
            "PYTHONUNBUFFERED": "1",
            **cfg.media_node_env,
        }
        self.media_node = subprocess.Popen(
            [sys.executable, "-m", "media_node"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._log_thread = threading.Thread(
            target=_relay_output, args=(self.media_node, "media-node"), daemon=True
        )
        self._log_thread.start()
        _wait_http_ok(f"http://{cfg.host}:{cfg.media_node_port}/healthz", self.media_node)
        self.parts["Media node (python -m media_node)"] = self.media_url

    @property
    def console_url(self) -> str:
        return f"http://{CONSOLE_HOST}:{self.cfg.console_port}"

    def _start_console(self) -> None:
        from mapokezi_cli.console import ConsoleServer, local_settings

        settings = local_settings(self.cfg)
        # Loopback whatever LOCAL_HOST says: the console shows callers' data and has no login
        # (`mapokezi console --listen-anywhere` is the explicit way to share it).
        self.console = ConsoleServer(settings, CONSOLE_HOST, self.cfg.console_port).start()
        self.parts["Console (mapokezi console)"] = self.console_url

    def _start_gateway(self) -> None:
        cfg = self.cfg
        self.gateway = Gateway(cfg.host, cfg.gateway_port, status_page=self.status_page).start(
            warm=True
        )
        if self.console:
            self.gateway.home_url = self.console_url
        self.parts["HTTP API gateway"] = self.gateway_url
        gateway = self.gateway
        for function, handler, queue_url in self._consumers:
            self.pollers.append(
                SqsPoller(
                    boto3.client("sqs"),
                    queue_url,
                    lambda event, f=function, h=handler: gateway.registry.invoke(f, h, event),
                ).start()
            )
            self.parts[f"{function} queue poller"] = queue_url

    def settings(self) -> dict[str, str]:
        """The variables another terminal needs to reach this stack (``local/running.py``)."""
        cfg = self.cfg
        values = {
            "LOCAL_HOST": cfg.host,
            "GATEWAY_PORT": str(cfg.gateway_port),
            "MEDIA_NODE_PORT": str(cfg.media_node_port),
            "MOTO_PORT": str(cfg.moto_port),
            "SAUTIKIT_DOUBLE_PORT": str(cfg.sautikit_double_port),
            "MODEL_DOUBLE_PORT": str(cfg.model_double_port),
            "GEMINI_DOUBLE_PORT": str(cfg.gemini_double_port),
            "CONSOLE_PORT": str(cfg.console_port),
            "CALLS_TABLE": cfg.table_name,
            "DEMO_NUMBER": cfg.demo_number,
            "DEMO_GEMINI_NUMBER": cfg.demo_gemini_number,
        }
        if cfg.webhook_secret:
            values["SAUTIKIT_WEBHOOK_SECRET"] = cfg.webhook_secret
        if cfg.sautikit_api_url:
            values["SAUTIKIT_API_URL"] = cfg.sautikit_api_url
        return values

    def call_command(self) -> str:
        """The exact ``make call`` for this stack (variables that differ from the defaults)."""
        defaults = LocalStack(StackConfig()).settings()
        changed = {
            k: v for k, v in self.settings().items() if defaults.get(k) != v and "SECRET" not in k
        }
        prefix = " ".join(f"{k}={v}" for k, v in changed.items())
        return f"{prefix} make call".strip()

    def status_page(self) -> str:
        """Plain-text summary of the running parts (printed by ``make run``)."""
        lines = ["Mapokezi local stack", ""]
        lines += [f"  {name:<38} {where}" for name, where in self.parts.items()]
        lines += [
            "",
            f"  Console:       {self.console_url if self.console else '(not running)'}",
            f"  Voice webhook: {self.gateway_url}/voice",
            f"  Place a call:  {self.call_command()}",
            "  Operator CLI:  .venv/bin/mapokezi --local calls list",
        ]
        return "\n".join(lines) + "\n"


def _sqs_consumers() -> list[tuple[str, str, str]]:
    """(function logical id, handler, queue logical id) of each of the template's SQS consumers."""
    found = []
    for name, props in resources_of_type("AWS::Serverless::Function").items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "SQS":
                queue = event["Properties"]["Queue"]
                queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) else str(queue)
                found.append((name, props["Handler"], queue_id))
    return found


def _relay_output(process: subprocess.Popen[bytes], prefix: str) -> None:
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        sys.stderr.write(f"[{prefix}] {line.decode(errors='replace')}")


def _wait_http_ok(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
