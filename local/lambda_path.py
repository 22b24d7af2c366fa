"""The Lambda code root on the import path, as Lambda itself has it.

``sam deploy`` zips ``functions/`` as the code root, so handlers import ``voice.app`` and
``serverless.voice_flow`` as top-level packages. Those names are deliberately not installed into
the virtual environment (``events`` or ``voice`` in site-packages would shadow other packages);
whatever runs handlers outside Lambda puts ``functions/`` on ``sys.path`` first.
"""

from __future__ import annotations

import sys
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"


def add_functions_to_path() -> None:
    """Makes the Lambda packages importable (idempotent)."""
    path = str(FUNCTIONS_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
