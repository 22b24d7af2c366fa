"""Where the running local stack listens, for ``make call`` and ``mapokezi --local``.

``make run`` writes the settings it was started with (ports, table, demo number, webhook
secret) to ``var/local-stack.json`` and removes the file when it stops, so tools started from
another terminal find the stack on whatever ports it was given. A variable set in the tool's
own environment still wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

STATE_FILE = Path(__file__).resolve().parent.parent / "var" / "local-stack.json"


def write(settings: Mapping[str, str], path: Path | None = None) -> None:
    """Record the running stack's settings (variable name -> value)."""
    path = path or STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # It may hold the local webhook secret: readable by this user only (and git-ignored).
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(json.dumps(dict(settings), indent=2) + "\n")


def remove(path: Path | None = None) -> None:
    """Forget the stack (it stopped)."""
    (path or STATE_FILE).unlink(missing_ok=True)


def settings(path: Path | None = None) -> dict[str, str]:
    """The running stack's settings, overridden by this process's environment."""
    try:
        recorded = json.loads((path or STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    return {**{str(k): str(v) for k, v in recorded.items()}, **os.environ}


def setting(name: str, default: str = "") -> str:
    """One setting: this process's environment, else the running stack's, else ``default``."""
    return settings().get(name) or default
