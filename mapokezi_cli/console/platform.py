"""What Sautikit itself knows, through the REST client: recordings and the workspace's numbers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mapokezi.sautikit_api import SautikitApiError, SautikitClient

log = logging.getLogger("mapokezi.console")


@dataclass
class SautikitLookup:
    """Asks Sautikit; every answer is a plain dict for the pages, and nothing raises."""

    client: SautikitClient

    def recording(self, call_id: str) -> dict[str, Any]:
        """A call's recording (``GET /v1/calls/{id}/recording``).

        ``{"state": "ready", "url"}`` (the page plays the presigned URL),
        ``{"state": "pending", "retry_after_seconds"}`` or ``{"state": "none", "reason"}``.
        """
        try:
            return self.client.get_recording(call_id)
        except SautikitApiError as exc:
            if exc.status in (404, 410):
                return {"state": "none", "reason": "Sautikit has no recording of this call."}
            log.warning("recording lookup for %s failed: %s", call_id, exc)
            return {"state": "none", "reason": f"Sautikit did not answer: {exc}"}

    def numbers(self) -> dict[str, Any]:
        """The workspace's numbers by E.164: ``{"numbers": {e164: number}}`` or ``{"error"}``."""
        try:
            owned = self.client.list_numbers()
        except SautikitApiError as exc:
            log.warning("listing Sautikit numbers failed: %s", exc)
            return {"error": f"Sautikit did not answer: {exc}"}
        by_number = {}
        for number in owned:
            e164 = number.get("number") or number.get("e164")
            if isinstance(e164, str):
                by_number[e164] = number
        return {"numbers": by_number}
