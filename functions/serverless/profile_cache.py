"""Profiles remembered in the function, so a caller still reaches the front desk when the table
cannot be read.

Every lookup reads the table (a profile edit applies to the next call); what was read is kept in
the process for :data:`MAX_AGE_SECONDS` and used only when a read fails.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from mapokezi import store
from mapokezi.profiles import Profile

logger = Logger(child=True)

MAX_AGE_SECONDS = 900.0

_profiles: dict[str, tuple[float, Profile | None]] = {}
_lock = threading.Lock()


def get_profile(table: Any, number: str) -> Profile | None:
    """The number's profile from the table, or the remembered one when the table fails.

    Raises:
        ClientError, BotoCoreError: the table failed and nothing recent is remembered.
    """
    try:
        profile = store.get_profile(table, number)
    except (ClientError, BotoCoreError):
        with _lock:
            seen = _profiles.get(number)
        if seen is None or time.monotonic() - seen[0] > MAX_AGE_SECONDS:
            raise
        logger.warning("profile read failed; using the remembered one", extra={"to": number})
        return seen[1]
    with _lock:
        _profiles[number] = (time.monotonic(), profile)
    return profile


def remembered(number: str | None) -> Profile | None:
    """The profile last read for ``number`` if it is recent enough, without reading the table."""
    if not number:
        return None
    with _lock:
        seen = _profiles.get(number)
    if seen is None or time.monotonic() - seen[0] > MAX_AGE_SECONDS:
        return None
    return seen[1]


def forget() -> None:
    """Drop every remembered profile (tests)."""
    with _lock:
        _profiles.clear()
