"""What the media-node benchmarks run against: moto, the model double, the node process.

- :class:`BenchAws`: moto in server mode on loopback with the calls table from template.yaml,
  the example profile at each provider's number (`bench.providers`), and one call record plus
  stream token per leg, minted exactly as the voice webhook does.
- :class:`ModelTap`: timestamps, per Realtime double session, every audio append received and
  every ``speech_started`` and first audio delta sent (through the double's ``on_session`` hook,
  wrapping that session's sans-I/O protocol object).
- :class:`NodeProcess`: ``python -m media_node`` as a child process, optionally pinned to one
  core, with its CPU time and resident memory read from ``/proc``.
- :class:`DoubleProcess`: ``python -m bench.model_double``, the OpenAI Realtime or Gemini Live
  double with its taps (the Gemini one is `bench.providers.GeminiTap`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu_quota import CpuQuota
from bench.loadgen import LegSpec

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "+254700000100"
CALLER = "+254711000333"
TOKEN_SECRET = "bench-stream-token-secret"
API_KEY = "sk-bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PRIORITIES = {"node": (-10, 20), "generator": (-10, 20), "helper": (-5, 10)}
"""Per role: (niceness, SCHED_FIFO priority with `realtime`). The node and the generator get
the most; the model double and moto share the generator's core below it, so the generator
preempts them at once instead of after a time slice; all rank above unrelated work."""

ALLOWED_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
"""The cores this run may use, read before anything is pinned."""

realtime = False
"""SCHED_FIFO instead of niceness (``--realtime``): on a machine shared with other work, only
real-time priority stops unrelated processes from delaying the measured ones by a time slice."""


def core_plan() -> tuple[int | None, int | None]:
    """(media node core, generator core): the first two allowed cores, or no pinning."""
    if len(ALLOWED_CPUS) >= 2:
        return ALLOWED_CPUS[0], ALLOWED_CPUS[1]
    return None, None


def pin_to(cpu: int | None, role: str = "", *, fifo: bool | None = None) -> None:
    """Pins the calling thread (and threads it starts later) to `cpu` and raises its priority.

    Args:
        cpu: The core, or None to leave the affinity alone.
        role: ``node``, ``generator`` or ``helper`` (see `PRIORITIES`); empty keeps the
            priority.
        fifo: SCHED_FIFO instead of niceness; None follows `realtime`.
    """
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    if not role:
        return
    nice, priority = PRIORITIES[role]
    # Raising priority needs privileges; without them, run at the default.
    with contextlib.suppress(PermissionError, OSError):
        if realtime if fifo is None else fifo:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        else:
            os.nice(nice)


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    from local.stack import free_port as free

    return free("127.0.0.1")


class BenchAws:
    """moto server with the calls table, the example profile and per-call tokens."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.table: Any = None

    def start(self, cpu: int | None = None) -> BenchAws:
        """Starts moto (its own process, pinned to `cpu`), creates the table, seeds the profile."""
        import boto3

        from local.template import create_tables
        from mapokezi import config, store
        from mapokezi.profiles import load_profile_file, parse_profile

        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: pin_to(cpu, "helper"),
        )
        _wait_http(f"{self.endpoint}/moto-api/", self.process)
        os.environ.update(self.env())
        config.reset_aws_clients()
        create_tables(boto3.client("dynamodb"), {"CallsTable": "mapokezi-calls"})
        self.table = config.dynamodb_table("mapokezi-calls")
        from bench.providers import NUMBERS, profile_changes

        example = load_profile_file(ROOT / "profiles" / "example.yaml")
        for provider, number in NUMBERS.items():
            profile = parse_profile({**example, **profile_changes(provider)}, number=number)
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

    def new_call(
        self, media_url: str, rate: int = 16000, number: str = NUMBER
    ) -> tuple[str, LegSpec]:
        """Creates a call record and a claimable stream token for a call to `number` (whose
        profile picks the model); returns the call id and leg."""
        from local.lambda_path import add_functions_to_path
        from mapokezi import store, tokens

        add_functions_to_path()
        from serverless import voice_flow

        call_id = str(uuid.uuid4())
        store.create_call(self.table, call_id=call_id, caller=CALLER, to=number, retention_days=1)
        token, claims = tokens.mint_stream_token(TOKEN_SECRET, call_id, number)
        store.set_stream_token(self.table, call_id, claims.nonce)
        metadata = {"callSid": call_id, "from": CALLER, "to": number, "sampleRate": rate}
        return call_id, LegSpec(voice_flow.stream_url(media_url, token), metadata, rate)

    def metrics_of(self, call_id: str) -> dict[str, Any] | None:
        """The ``metrics`` the node wrote to the call record, once the call has ended."""
        from mapokezi import store

        record = store.get_call(self.table, call_id)
        return (record or {}).get("metrics")

    def stop(self) -> None:
        """Stops moto."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


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
        from doubles.openai_realtime import Reply
        from doubles.openai_realtime.audio import synthesize_speech

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
    """``python -m media_node`` on loopback, pinned to `cpu` when given, with `model_url` as
    `provider`'s endpoint (``OPENAI_REALTIME_URL`` or ``GEMINI_LIVE_URL``)."""

    def __init__(
        self,
        aws: BenchAws,
        model_url: str,
        *,
        cpu: int | None,
        max_calls: int,
        extra_env: dict[str, str] | None = None,
        quota: CpuQuota | None = None,
        provider: str = "openai",
    ) -> None:
        self.port = free_port()
        self.cpu = cpu
        self.quota = quota
        self.env = {
            **os.environ,
            **aws.env(),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")]),
            "MEDIA_NODE_HOST": "127.0.0.1",
            "MEDIA_NODE_PORT": str(self.port),
            "MAX_CALLS": str(max_calls),
            "STREAM_TOKEN_SECRET": TOKEN_SECRET,
            "OPENAI_API_KEY": API_KEY,
            "MEDIA_STREAM_URL": self.media_url,
            "NODE_ID": "bench-node",
            "DRAIN_SECONDS": "5",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # The dialled number's profile picks the adapter; `model_url` is that provider's.
            **(
                {"GEMINI_LIVE_URL": model_url, "GEMINI_API_KEY": API_KEY}
                if provider == "gemini"
                else {"OPENAI_REALTIME_URL": model_url}
            ),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.probe_path: Path | None = None

    @property
    def media_url(self) -> str:
        """The node's media socket URL."""
        return f"ws://127.0.0.1:{self.port}/audio"

    def start(self, log_path: Path, profile_path: Path | None = None) -> NodeProcess:
        """Starts the node (under ``bench.node_probe``) and waits for ``/healthz``.

        With a quota the node runs in its cgroup (see `bench.cpu_quota`), which `stop`
        removes.
        """
        if self.quota is not None:
            self.quota.create()
        self.log_path = log_path
        self.probe_path = log_path.with_suffix(".pacing.json")
        self.probe_path.unlink(missing_ok=True)
        env = {**self.env, "BENCH_PROBE_PATH": str(self.probe_path)}
        if profile_path is not None:
            env["BENCH_PROFILE_PATH"] = str(profile_path)
        try:
            return self._start(env, log_path)
        except BaseException:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
            if self.quota is not None:
                self.quota.remove()
            raise

    def _start(self, env: dict[str, str], log_path: Path) -> NodeProcess:
        log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.node_probe"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._enter,
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

    def _enter(self) -> None:
        """In the child, before the node starts: its cgroup, core and priority."""
        if self.quota is not None:
            # A real-time task may not join a group without real-time runtime (EINVAL): join
            # at the normal policy, then take the policy the quota is enforced on.
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            self.quota.enter()
            pin_to(self.cpu, "node", fifo=self.quota.realtime)
        else:
            pin_to(self.cpu, "node")

    def tail(self, lines: int = 15) -> str:
        """The last lines of the node's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def probe_reset(self) -> None:
        """Starts the pacing-error histogram afresh (SIGUSR1 to the probe)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGUSR1)

    async def probe_histogram(self) -> dict[str, Any] | None:
        """The pacing-error histogram since the last reset (SIGUSR2, then read the file)."""
        assert self.process is not None and self.probe_path is not None
        self.probe_path.unlink(missing_ok=True)
        os.kill(self.process.pid, signal.SIGUSR2)
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                return json.loads(self.probe_path.read_text())
            except (OSError, ValueError):
                continue
        return None

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
        try:
            return await self._stop()
        finally:
            if self.quota is not None:
                await asyncio.to_thread(self.quota.remove)

    async def _stop(self) -> int | None:
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


def _wait_http(url: str, process: subprocess.Popen[bytes], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {limit_s:.0f} s")


class DoubleProcess:
    """``python -m bench.model_double`` as a child process, pinned to `cpu` when given, speaking
    `provider`'s wire protocol."""

    def __init__(
        self, *, cpu: int | None, port: int = 0, provider: str = "openai", **options: float
    ) -> None:
        self.cpu = cpu
        self.port = port
        self.provider = provider
        self.options = options
        self.url = ""
        self.sessions = 0
        self.process: asyncio.subprocess.Process | None = None
        self._replies: asyncio.Queue[str] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> DoubleProcess:
        """Starts the double and waits until it listens."""
        cpu = self.cpu
        args = [sys.executable, "-m", "bench.model_double", "--port", str(self.port)]
        args += ["--provider", self.provider]
        for name, value in self.options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = await asyncio.create_subprocess_exec(
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=lambda: pin_to(cpu, "helper"),
        )
        self._reader = asyncio.create_task(self._read())
        ready = await asyncio.wait_for(self._replies.get(), 30)
        if not ready.startswith("ready "):
            raise RuntimeError(f"model double did not start: {ready}")
        self.url = ready.split(" ", 1)[1]
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode():
            line = line.strip()
            if line.startswith("session "):
                self.sessions = int(line.split()[1])
            else:
                await self._replies.put(line)
        await self._replies.put("exited")

    async def wait_sessions(self, count: int, limit_s: float) -> bool:
        """Waits until `count` sessions have opened since the last reset."""
        deadline = time.monotonic() + limit_s
        while self.sessions < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    async def _command(self, line: str) -> str:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        return await asyncio.wait_for(self._replies.get(), 60)

    async def reset(self) -> None:
        """Forgets the sessions so far (indexes restart at 0)."""
        await self._command("reset")
        self.sessions = 0

    async def taps(self, path: Path) -> list[dict[str, Any]]:
        """Every session's timestamps since the last reset."""
        await self._command(f"dump {path}")
        data = await asyncio.to_thread(path.read_text)
        return json.loads(data)["sessions"]

    def cpu_seconds(self) -> float:
        """CPU time of the double so far."""
        assert self.process is not None
        return proc_cpu_seconds(self.process.pid)

    async def stop(self) -> None:
        """Closes stdin (the double exits) and waits."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def core_busy_seconds() -> dict[int, float]:
    """Busy (non-idle, non-iowait) seconds of every core so far, from ``/proc/stat``."""
    busy: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            busy[int(name[3:])] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS
    return busy


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
