"""Benchmarks of the media node and the serverless half (``make bench``, ``python -m bench``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The Lambda code lives in functions/ (zipped as-is); make it importable without an install.
for _path in (str(ROOT), str(ROOT / "functions")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
