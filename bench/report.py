"""Benchmark output: plain-text tables for the terminal and a JSON file per run.

Every run writes ``bench/results/<UTC timestamp>.json`` and overwrites ``bench/results/latest.json``
so runs can be diffed; the JSON carries the machine it came from and the command that made it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, kernel, Python and the repository revision."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["git_revision"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=RESULTS_DIR.parent.parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["git_revision"] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def format_table(
    columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]], indent: int = 2
) -> str:
    """A fixed-width text table.

    Args:
        columns: ``(key, heading)`` pairs, in display order.
        rows: One mapping per row; missing keys and None print as ``-``.
        indent: Spaces before every line.

    Returns:
        The table, heading first, without a trailing newline.
    """
    cells = [[heading for _, heading in columns]]
    cells += [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    pad = " " * indent
    lines = []
    for number, line in enumerate(cells):
        # The first column names the row: left-aligned; figures right-aligned.
        texts = [
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append(pad + "  ".join(texts).rstrip())
        if number == 0:
            lines.append(pad + "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def write_results(
    results: Mapping[str, Any], directory: Path = RESULTS_DIR, stamp: str | None = None
) -> Path:
    """Writes `results` to ``<directory>/<stamp>.json`` and ``<directory>/latest.json``.

    Args:
        results: JSON-serialisable figures.
        directory: Where to write (created if missing).
        stamp: File name stem; the current UTC time (``20260101T120000Z``) by default.

    Returns:
        The path of the timestamped file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=2, sort_keys=False, default=_json_default) + "\n"
    path = directory / f"{stamp}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def header(results: Mapping[str, Any]) -> str:
    """The first lines of the terminal report: what ran, where, and how to reproduce it."""
    machine = results.get("machine", {})
    return "\n".join(
        [
            f"Mapokezi benchmarks  {results.get('started_at', '')}",
            f"  machine: {machine.get('cpu_model')}, {machine.get('cores')} cores, "
            f"{machine.get('memory_mb')} MB, Linux {machine.get('kernel')}, "
            f"Python {machine.get('python')}, rev {machine.get('git_revision')}",
            f"  command: {results.get('command', '')}",
        ]
    )


def command_line() -> str:
    """How this run was started (``make bench ARGS=...`` equivalent)."""
    args = " ".join(sys.argv[1:])
    return f"python -m bench {args}".strip()


class Stopwatch:
    """Wall-clock seconds since creation, for the per-part runtimes in the report."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        """Seconds elapsed, rounded to 0.1 s."""
        return round(time.monotonic() - self.started, 1)
