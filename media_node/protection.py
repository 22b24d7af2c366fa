"""ECS task scale-in protection while calls are live.

A protected task is not stopped by service auto scaling or by deployments, so a scale-in never
cuts a caller off. The node tells :class:`TaskProtection` how many calls it has; a background
loop keeps the ECS agent's state in line: protection on when the first call starts, renewed
before it lapses while calls continue, off when the last call ends. Without ``ECS_AGENT_URI``
(local runs) it does nothing. Failures are logged and retried; they never affect calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

STATE_PATH = "/task-protection/v1/state"
_RETRY_SECONDS = 5.0
_REQUEST_TIMEOUT_SECONDS = 5.0


class ProtectionError(RuntimeError):
    """The ECS agent refused or could not be reached."""


def put_protection_state(agent_uri: str, enabled: bool, expires_minutes: int) -> dict[str, Any]:
    """PUT the task's protection state to the ECS agent (blocking; run it in a thread).

    Returns:
        The agent's ``protection`` object.

    Raises:
        ProtectionError: HTTP error, unreachable agent, or a ``failure``/``error`` in the reply.
    """
    body: dict[str, Any] = {"ProtectionEnabled": enabled}
    if enabled:
        body["ExpiresInMinutes"] = expires_minutes
    request = urllib.request.Request(
        agent_uri.rstrip("/") + STATE_PATH,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_REQUEST_TIMEOUT_SECONDS) as response:
            reply = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise ProtectionError(f"ECS agent answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ProtectionError(f"ECS agent unreachable or unreadable: {exc}") from None
    if not isinstance(reply, dict):
        raise ProtectionError(f"ECS agent answered {type(reply).__name__}, not an object")
    problem = reply.get("failure") or reply.get("error")
    if problem:
        raise ProtectionError(f"ECS agent refused: {json.dumps(problem)[:300]}")
    protection = reply.get("protection")
    return protection if isinstance(protection, dict) else {}


class TaskProtection:
    """Keeps ECS task scale-in protection on exactly while the node has calls.

    Args:
        agent_uri: ``ECS_AGENT_URI``; None disables everything.
        expires_minutes: ``ExpiresInMinutes`` sent with each enable.
        renew_after_seconds: re-send the enable this long after the last one while calls are
            live (default: half of ``expires_minutes``, well before the protection lapses).
        retry_seconds: wait before retrying a failed update.
        clock: monotonic clock in seconds.
    """

    def __init__(
        self,
        agent_uri: str | None,
        expires_minutes: int = 60,
        *,
        renew_after_seconds: float | None = None,
        retry_seconds: float = _RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent_uri = agent_uri
        self.expires_minutes = expires_minutes
        self.renew_after_seconds = (
            expires_minutes * 60 / 2 if renew_after_seconds is None else renew_after_seconds
        )
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._wanted = False
        self._protected = False
        self._renew_at = 0.0
        self._wake = asyncio.Event()
        self.updates = 0  # successful PUTs, for logs and tests
        self.failures = 0

    @property
    def enabled(self) -> bool:
        """Whether an ECS agent is configured."""
        return self.agent_uri is not None

    @property
    def protected(self) -> bool:
        """Whether the agent last confirmed protection on."""
        return self._protected

    def set_active_calls(self, active_calls: int) -> None:
        """Tell the loop how many calls are live; it reconciles in the background."""
        wanted = active_calls > 0
        if wanted != self._wanted:
            self._wanted = wanted
            self._wake.set()

    async def run(self) -> None:
        """Reconcile the agent's state until cancelled (returns at once when disabled)."""
        if not self.enabled:
            return
        while True:
            self._wake.clear()  # before the step, so a change made during a PUT is not missed
            delay = await self._reconcile()
            if delay is None:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def release(self) -> None:
        """Turn protection off now if it is on (used on shutdown)."""
        self._wanted = False
        if self.enabled and self._protected:
            await self._reconcile()

    async def _reconcile(self) -> float | None:
        """One step towards the wanted state; returns seconds until the next step, or None."""
        wanted = self._wanted
        now = self._clock()
        due = wanted != self._protected or (wanted and now >= self._renew_at)
        if due:
            assert self.agent_uri is not None
            try:
                await asyncio.to_thread(
                    put_protection_state, self.agent_uri, wanted, self.expires_minutes
                )
            except ProtectionError as exc:
                self.failures += 1
                logger.warning(
                    "task protection update failed",
                    extra={"protection_enabled": wanted, "error": str(exc)},
                )
                return self.retry_seconds
            self.updates += 1
            self._protected = wanted
            self._renew_at = now + self.renew_after_seconds
            logger.info(
                "task protection updated",
                extra={"protection_enabled": wanted, "expires_in_minutes": self.expires_minutes},
            )
        if self._protected:
            return max(0.0, self._renew_at - self._clock())
        return None
