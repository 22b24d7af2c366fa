"""What the media-node benchmarks run against: moto, the Realtime double, the node process.

- :class:`BenchAws`: moto in server mode on loopback with the calls table from template.yaml,
  the example profile for the dialled number, and one call record plus stream token per leg,
  minted exactly as the voice webhook does.
- :class:`ModelTap`: timestamps, per Realtime double session, every audio append received and
  every ``speech_started`` and first audio delta sent (through the double's ``on_session`` hook,
  wrapping that session's sans-I/O protocol object).
- :class:`NodeProcess`: ``python -m media_node`` as a child process, optionally pinned to one
  core, with its CPU time and resident memory read from ``/proc``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import LegSpec

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "+254700000100"
CALLER = "+254711000333"
TOKEN_SECRET = "bench-stream-token-secret"
API_KEY = "sk-bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pin_to(cpu: int | None) -> None:
    """Pins the calling thread (and the threads it starts later) to `cpu`, if given."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    from local.stack import free_port as free

    return free("127.0.0.1")


class BenchAws:
    """moto server with the calls table, the example profile and per-call tokens."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: Any = None
        self.table: Any = None

    def start(self) -> BenchAws:
        """Starts moto, creates the tables and seeds the profile."""
        import boto3
        from moto.server import ThreadedMotoServer

        from local.template import create_tables
        from mapokezi import config, store
        from mapokezi.profiles import load_profile_file, parse_profile

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        os.environ.update(self.env())
        config.reset_aws_clients()
        create_tables(boto3.client("dynamodb"), {"CallsTable": "mapokezi-calls"})
        self.table = config.dynamodb_table("mapokezi-calls")
        profile = parse_profile(
            load_profile_file(ROOT / "profiles" / "example.yaml"), number=NUMBER
        )
        store.put_profile(self.table, profile)
        return self

    def env(self) -> dict[str, str]:
        """AWS settings shared by this process and the node."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "af-south-1",
            "CALLS_TABLE": "mapokezi-calls",
        }

    def new_call(self, media_url: str, rate: int = 16000) -> tuple[str, LegSpec]:
        """Creates a call record and a claimable stream token; returns the call id and leg."""
        from mapokezi import store, tokens, voice_flow

        call_id = str(uuid.uuid4())
        store.create_call(self.table, call_id=call_id, caller=CALLER, to=NUMBER, retention_days=1)
        token, claims = tokens.mint_stream_token(TOKEN_SECRET, call_id, NUMBER)
        store.set_stream_token(self.table, call_id, claims.nonce)
        metadata = {"callSid": call_id, "from": CALLER, "to": NUMBER, "sampleRate": rate}
        return call_id, LegSpec(voice_flow.stream_url(media_url, token), metadata, rate)

    def metrics_of(self, call_id: str) -> dict[str, Any] | None:
        """The ``metrics`` the node wrote to the call record, once the call has ended."""
        from mapokezi import store

        record = store.get_call(self.table, call_id)
        return (record or {}).get("metrics")

    def stop(self) -> None:
        """Stops moto."""
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class SessionTap:
    """Timestamps of one Realtime double session."""

    appends: list[float] = field(default_factory=list)
    speech_started: list[float] = field(default_factory=list)
    first_deltas: list[float] = field(default_factory=list)
    in_audio: bool = False


class ModelTap:
    """Pass as the double's ``on_session``; ``sessions[i]`` taps the i-th session."""

    def __init__(self) -> None:
        self.sessions: list[SessionTap] = []

    def __call__(self, session: Any) -> None:
        tap = SessionTap()
        self.sessions.append(tap)
        protocol = session.protocol
        receive_text = protocol.receive_text
        actions_to_perform = protocol.actions_to_perform
        clock = time.monotonic

        def timed_receive(text: str) -> None:
            if text.startswith('{"type":"input_audio_buffer.append"'):
                tap.appends.append(clock())
            receive_text(text)

        def timed_actions() -> list[Any]:
            actions = actions_to_perform()
            for action in actions:
                text = getattr(action, "text", None)
                if not text:
                    continue
                if text.startswith('{"type":"response.output_audio.delta"'):
                    if not tap.in_audio:
                        tap.first_deltas.append(clock())
                        tap.in_audio = True
                elif text.startswith('{"type":"response.created"'):
                    tap.in_audio = False
                elif text.startswith('{"type":"input_audio_buffer.speech_started"'):
                    tap.speech_started.append(clock())
            return actions

        protocol.receive_text = timed_receive
        protocol.actions_to_perform = timed_actions


class BenchResponder:
    """The double's "model": a greeting, then the same reply to every caller turn.

    Audio is synthesised once and shared by every session, so hundreds of sessions cost the
    double no synthesis work.
    """

    def __init__(self, greeting_s: float = 2.0, reply_s: float = 3.0) -> None:
        from tests.doubles.openai_realtime import Reply
        from tests.doubles.realtime_audio import synthesize_speech

        greeting = "Karibu, thank you for calling. How can I help you today?"
        reply = "We are open from eight in the morning until six in the evening, every weekday."
        self.greeting = Reply(
            greeting, synthesize_speech(greeting, ms_per_char=greeting_s * 1000 / len(greeting))
        )
        self.reply = Reply(reply, synthesize_speech(reply, ms_per_char=reply_s * 1000 / len(reply)))
        self.short = Reply("All right.", synthesize_speech("All right."))

    def transcribe(self, state: Any, turn_index: int) -> str:
        """Every caller turn asks the same question."""
        return "When are you open?"

    def respond(self, state: Any, trigger: Any) -> Any:
        """Greeting first, the opening-hours reply to every caller turn, short otherwise."""
        if trigger.kind == "greeting":
            return self.greeting
        if trigger.kind in ("user_audio", "user_text"):
            return self.reply
        return self.short


class NodeProcess:
    """``python -m media_node`` on loopback, pinned to `cpu` when given."""

    def __init__(
        self,
        aws: BenchAws,
        model_url: str,
        *,
        cpu: int | None,
        max_calls: int,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.cpu = cpu
        self.env = {
            **os.environ,
            **aws.env(),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")]),
            "MEDIA_NODE_HOST": "127.0.0.1",
            "MEDIA_NODE_PORT": str(self.port),
            "MAX_CALLS": str(max_calls),
            "STREAM_TOKEN_SECRET": TOKEN_SECRET,
            "OPENAI_REALTIME_URL": model_url,
            "OPENAI_API_KEY": API_KEY,
            "MEDIA_STREAM_URL": self.media_url,
            "NODE_ID": "bench-node",
            "DRAIN_SECONDS": "5",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def media_url(self) -> str:
        """The node's media socket URL."""
        return f"ws://127.0.0.1:{self.port}/audio"

    def start(self, log_path: Path) -> NodeProcess:
        """Starts the node and waits for ``/healthz``."""
        cpu = self.cpu
        self.log_path = log_path
        log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "media_node"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: pin_to(cpu)) if cpu is not None else None,
        )
        log.close()
        deadline = time.monotonic() + 30
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"media node exited with {self.process.returncode}: {self.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"media node did not become healthy: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        """The last lines of the node's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the node so far."""
        assert self.process is not None
        return proc_cpu_seconds(self.process.pid)

    def rss_mb(self) -> float:
        """Resident memory of the node now."""
        assert self.process is not None
        return proc_rss_mb(self.process.pid)

    async def stop(self) -> int | None:
        """SIGTERM (the node drains), then waits; kills it if it does not exit."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.terminate()
        for _ in range(150):
            if process.poll() is not None:
                return process.returncode
            await asyncio.sleep(0.1)
        process.kill()
        return process.wait(timeout=5)


def proc_cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process from ``/proc/<pid>/stat``, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_rss_mb(pid: int | str = "self") -> float:
    """VmRSS of a process from ``/proc/<pid>/status``, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
