"""What one call's audio costs the node per 20 ms frame, measured without real time.

A scripted frame loop drives the node's own per-frame code with no sockets and no clock, so the
figure depends on the code, not on how busy the machine is:

- ``uplink``: a caller frame as it arrives (a masked WebSocket frame) → websockets' server
  protocol → `InboundAudio` (decode, 40 ms blocks, soxr 16→24 kHz) → ``input_audio_buffer.append``
  text → websockets' client protocol (masking) → bytes for the model socket.
- ``downlink``: the model's ``response.output_audio.delta`` frames (120 ms of 24 kHz audio each,
  as the service and the double send them) → websockets' client protocol →
  `OpenAIRealtimeProtocol.receive` (JSON, base64) → soxr 24→16 kHz → `Framer` → `Pacer` → one
  binary WebSocket frame per 20 ms for the caller.

Variants switch one lever at a time (base64 backend, masking in C or Python, append size);
the ``/gemini`` variants run the same path with the Gemini Live adapter's messages instead
(``realtimeInput.audio`` at the caller's 16 kHz, so no uplink resampler; ``serverContent``
with inline 24 kHz audio, in binary frames as the service sends them).
Each is reported as CPU time per frame (``time.process_time`` over many frames; the minimum of
a few repeats, since interference only ever adds time) and, where valgrind is installed
(``apt-get install valgrind``), as instructions per frame counted by callgrind: the difference
between N and 3N frames, so interpreter start-up and imports cancel out. Instruction counts do
not move when other work shares the machine, which makes them the figure to compare levers by.

``python -m bench.frame_cost`` prints the table; ``--run VARIANT --frames N`` runs one loop
(what callgrind is pointed at).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CALL_RATE = 16000
FRAME_BYTES = CALL_RATE * 2 // 50
DELTA_MS = 120
FRAMES_PER_SECOND = 50

VARIANTS: dict[str, str] = {
    "uplink": "as the node runs it (pybase64, C masking, 40 ms appends)",
    "uplink/stdlib-base64": "appends encoded with binascii instead of pybase64",
    "uplink/python-masking": "websockets masking in Python (no C speedups)",
    "uplink/pooled-masks": "masks sliced from a 4 KB os.urandom pool (measured only: no seam)",
    "uplink/20ms-appends": "one append per caller frame",
    "uplink/100ms-appends": "one append per 100 ms",
    "downlink": "as the node runs it (deltas decoded with pybase64)",
    "downlink/stdlib-decode": "deltas decoded with binascii instead of pybase64",
    "uplink/gemini": "Gemini Live, 16 kHz call: no resampler, realtimeInput JSON, 40 ms",
    "downlink/gemini": "Gemini Live: serverContent.modelTurn, 120 ms of 24 kHz per message",
}


def _caller_audio(frames: int) -> bytes:
    """Speech-like 16 kHz PCM: a few tones with a slow envelope, so soxr sees real signal."""
    t = np.arange(frames * FRAME_BYTES // 2) / CALL_RATE
    signal = (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 1250 * t)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    )
    return (signal * 9000).astype("<i2").tobytes()


class _PooledSecrets:
    """``secrets.token_bytes`` drawn from one ``os.urandom`` call per 4 KB: what batching the
    client masks would save. websockets 17 calls ``secrets.token_bytes(4)`` inside
    ``Frame.serialize`` and offers no way to supply masks, so this is a measurement, not a lever
    the node can use without patching the library. Most of the saving is the ``getrandom``
    system call's time in the kernel, which the CPU time shows and callgrind's user-space
    instruction count does not."""

    POOL = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def token_bytes(self, n: int) -> bytes:
        if self._at + n > len(self._pool):
            self._pool, self._at = os.urandom(self.POOL), 0
        self._at += n
        return self._pool[self._at - n : self._at]


@contextlib.contextmanager
def _lever(variant: str) -> Iterator[None]:
    """Switches the variant's lever on for the duration (module attributes, restored after)."""
    from websockets import frames, utils

    from media_node.models import pcm_base64

    saved: list[tuple[Any, str, Any]] = []

    def swap(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    if variant.endswith("stdlib-base64"):
        swap(pcm_base64, "encode", pcm_base64.ENCODERS["stdlib"])
    elif variant.endswith("python-masking"):
        swap(frames, "apply_mask", utils.apply_mask)
    elif variant.endswith("pooled-masks"):
        swap(frames, "secrets", _PooledSecrets())
    elif variant.endswith("stdlib-decode"):
        swap(pcm_base64, "decode", pcm_base64.DECODERS["stdlib"])
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _uplink(frames: int, append_ms: int, provider: str = "openai") -> Callable[[int | None], int]:
    from websockets.protocol import Protocol, Side, State

    from media_node.audio import FRAME_MS
    from media_node.inbound import DecodePlan, InboundAudio
    from media_node.models import gemini_protocol
    from media_node.models import openai_protocol as wire

    if provider == "gemini":
        model_rate, encode = gemini_protocol.INPUT_RATE, gemini_protocol.audio_input
    else:
        model_rate, encode = wire.MODEL_RATE, wire.append_audio

    pcm = _caller_audio(frames)
    caller = Protocol(Side.CLIENT, state=State.OPEN)  # Sautikit's side: masks every frame
    arriving = []
    for i in range(frames):
        caller.send_binary(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES])
        arriving.append(b"".join(caller.data_to_send()))
    media = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    model = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    inbound = InboundAudio(DecodePlan(CALL_RATE, 1), model_rate, max(FRAME_MS, append_ms))

    def run(limit: int | None = None) -> int:
        sent = 0
        for data in arriving[:limit]:
            media.receive_data(data)
            for frame in media.events_received():
                block = inbound.feed(frame.data)
                if block:
                    model.send_text(encode(block).encode())
                    sent += len(b"".join(model.data_to_send()))
        return sent

    return run


def _model_messages(provider: str, pcm: bytes, delta_bytes: int) -> list[bytes]:
    """The model's audio as the service frames it: Realtime deltas as text, Gemini Live
    ``serverContent`` as binary frames."""
    from websockets.protocol import Protocol, Side, State

    service = Protocol(Side.SERVER, state=State.OPEN, max_size=None)  # the model's side
    arriving = []
    for n, start in enumerate(range(0, len(pcm) - delta_bytes + 1, delta_bytes)):
        encoded = base64.b64encode(pcm[start : start + delta_bytes]).decode()
        if provider == "gemini":
            part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": encoded}}
            message = {"serverContent": {"modelTurn": {"parts": [part]}}}
            service.send_binary(json.dumps(message, separators=(",", ":")).encode())
        else:
            event = {
                "type": "response.output_audio.delta",
                "event_id": f"event_{n:06d}",
                "response_id": "resp_bench",
                "item_id": "item_bench",
                "output_index": 0,
                "content_index": 0,
                "delta": encoded,
            }
            service.send_text(json.dumps(event).encode())
        arriving.append(b"".join(service.data_to_send()))
    return arriving


def _downlink(frames: int, provider: str = "openai") -> Callable[[int | None], int]:
    from websockets.protocol import Protocol, Side, State

    from media_node.audio import Framer, Pacer, StreamResampler
    from media_node.models import openai_protocol as wire
    from media_node.models.base import AudioDelta
    from media_node.models.gemini_protocol import GeminiLiveProtocol

    per_delta = DELTA_MS // 20
    model_pcm = _caller_audio(frames * 3 // 2)  # 24 kHz: 1.5 times the samples of 16 kHz
    delta_bytes = wire.MODEL_RATE * 2 * DELTA_MS // 1000
    arriving = _model_messages(provider, model_pcm, delta_bytes)
    model = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    media = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    protocol: Any = (
        GeminiLiveProtocol() if provider == "gemini" else wire.OpenAIRealtimeProtocol({})
    )
    resampler = StreamResampler(wire.MODEL_RATE, CALL_RATE)
    framer = Framer(FRAME_BYTES)
    pacer = Pacer()

    def run(limit: int | None = None) -> int:
        sent = 0
        now = 1000.0
        for data in arriving[: None if limit is None else limit // per_delta]:
            model.receive_data(data)
            for message in model.events_received():
                # As the sessions receive them: Realtime text as str, Gemini binary as bytes.
                frame = message.data if provider == "gemini" else message.data.decode()
                for event in protocol.receive(frame):
                    if isinstance(event, AudioDelta):
                        for frame in framer.push(resampler.process(event.pcm)):
                            pacer.enqueue(frame, event.item_id)
            for _ in range(per_delta):
                for released in pacer.release(now):
                    media.send_binary(released.frame)
                    sent += len(b"".join(media.data_to_send()))
                now += 0.02
        return sent

    return run


def build(variant: str, frames: int) -> Callable[[int | None], int]:
    """The frame loop of `variant` over `frames` frames of call audio (set up, not yet run).

    The loop takes an optional limit: run only the first that many frames.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    provider = "gemini" if variant.endswith("/gemini") else "openai"
    if variant.startswith("downlink"):
        return _downlink(frames, provider)
    append_ms = {"uplink/20ms-appends": 20, "uplink/100ms-appends": 100}.get(variant, 40)
    return _uplink(frames, append_ms, provider)


def cpu_us_per_frame(variant: str, frames: int = 3000, repeats: int = 5) -> float:
    """CPU microseconds per frame: the least of `repeats` runs over `frames` fresh frames."""
    best = float("inf")
    with _lever(variant):
        for _ in range(repeats):
            run = build(variant, frames)
            started = time.process_time()
            run()
            best = min(best, time.process_time() - started)
    return best * 1e6 / frames


def instructions_per_frame(variant: str, frames: int = 500) -> float | None:
    """Instructions per frame counted by callgrind; None without valgrind.

    Both runs set up 3N frames and run N or 3N of them, so start-up, imports and the set-up
    (test audio, pre-framed input) cancel out of the difference.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = []
    for n in (frames, 3 * frames):
        result = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
            + [sys.executable, "-m", "bench.frame_cost", "--run", variant]
            + ["--frames", str(3 * frames), "--limit", str(n)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        found = re.search(r"Collected\s*:\s*(\d+)", result.stderr)
        if result.returncode != 0 or not found:
            return None
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (2 * frames)


def run(*, instructions: bool = True, quick: bool = False) -> dict[str, Any]:
    """Every variant's CPU time (and instruction count) per frame, and what it means per call."""
    results: dict[str, Any] = {"variants": {}, "valgrind": bool(shutil.which("valgrind"))}
    for variant, description in VARIANTS.items():
        figures: dict[str, Any] = {"description": description}
        figures["cpu_us_per_frame"] = round(
            cpu_us_per_frame(variant, frames=1000 if quick else 3000, repeats=3 if quick else 5),
            2,
        )
        if instructions and results["valgrind"]:
            count = instructions_per_frame(variant, frames=200 if quick else 500)
            figures["instructions_per_frame"] = None if count is None else round(count)
        results["variants"][variant] = figures
        print(f"  {variant}: {figures}", flush=True)
    up, down = results["variants"]["uplink"], results["variants"]["downlink"]
    results["call_core_share_pct"] = round(
        (up["cpu_us_per_frame"] + down["cpu_us_per_frame"]) * FRAMES_PER_SECOND / 1e4, 3
    )
    up, down = results["variants"]["uplink/gemini"], results["variants"]["downlink/gemini"]
    results["gemini_call_core_share_pct"] = round(
        (up["cpu_us_per_frame"] + down["cpu_us_per_frame"]) * FRAMES_PER_SECOND / 1e4, 3
    )
    return results


def print_table(results: dict[str, Any]) -> None:
    """The variants side by side, with each lever's change against its direction's baseline."""
    print(
        "Per-frame cost of the audio path (scripted, no sockets or clock; per 20 ms frame of "
        "one call; instructions by callgrind)"
    )
    rows = results["variants"]
    for variant, figures in rows.items():
        base = rows[variant.split("/")[0]]
        cpu = figures["cpu_us_per_frame"]
        count = figures.get("instructions_per_frame")
        change = ""
        if "/" in variant:
            reference = base.get("instructions_per_frame") or base["cpu_us_per_frame"]
            value = count or cpu
            change = f"{100 * (value / reference - 1):+.0f} %"
        print(
            f"  {variant:26} {cpu:8.2f} µs  {count if count is not None else '-':>10} instr"
            f"  {change:>7}  {figures['description']}"
        )
    print(
        f"  both directions at 50 frames/s: {results['call_core_share_pct']} % of a core per "
        "call (the frame loop alone: no event loop, timers or socket system calls)"
    )
    if "gemini_call_core_share_pct" in results:
        print(f"  … a Gemini Live call: {results['gemini_call_core_share_pct']} % of a core")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.frame_cost``: the table, or one variant's loop with ``--run``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--run", choices=list(VARIANTS), help="run one variant's frame loop")
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--limit", type=int, help="with --run: run only this many frames")
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    args = parser.parse_args(argv)
    if args.run:
        with _lever(args.run):
            build(args.run, args.frames)(args.limit)
        return 0
    print_table(run(instructions=not args.no_instructions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
